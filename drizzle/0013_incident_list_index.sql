DROP INDEX `incidents_opened_idx`;--> statement-breakpoint
CREATE INDEX `incidents_list_idx` ON `incidents` ("opened_at" desc,`id`);