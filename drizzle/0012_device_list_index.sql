DROP INDEX `devices_kind_state_idx`;--> statement-breakpoint
CREATE INDEX `devices_list_idx` ON `devices` ("created_at" desc,`id`,`import_id`,`kind`,`state`,`resident_id`,`serial`);