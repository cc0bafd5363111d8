DROP INDEX `observations_dedup_gen_uq`;--> statement-breakpoint
DROP INDEX `observations_device_idx`;--> statement-breakpoint
CREATE UNIQUE INDEX `observations_alarm_key_uq` ON `observations` (`device_id`,`seq`,`device_ts`,`generation`) WHERE "observations"."life_safety" = 1;--> statement-breakpoint
CREATE UNIQUE INDEX `observations_other_key_uq` ON `observations` (`device_id`,`seq`,`device_ts`,`generation`) WHERE "observations"."life_safety" = 0;--> statement-breakpoint
CREATE INDEX `observations_other_device_idx` ON `observations` (`device_id`,`id`) WHERE "observations"."life_safety" = 0;