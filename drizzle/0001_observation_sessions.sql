DROP INDEX `observations_dedup_uq`;--> statement-breakpoint
ALTER TABLE `observations` ADD `session` text;--> statement-breakpoint
ALTER TABLE `observations` ADD `packet_id` integer;--> statement-breakpoint
ALTER TABLE `observations` ADD `generation` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `observations` ADD `incident_id` text;--> statement-breakpoint
CREATE UNIQUE INDEX `observations_dedup_gen_uq` ON `observations` (`device_id`,`seq`,`device_ts`,`generation`);--> statement-breakpoint
CREATE INDEX `observations_keyless_idx` ON `observations` (`device_id`,`packet_id`) WHERE "observations"."seq" IS NULL AND "observations"."packet_id" IS NOT NULL;