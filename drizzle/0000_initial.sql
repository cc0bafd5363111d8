CREATE TABLE `idempotency_keys` (
	`key` text NOT NULL,
	`user_id` text NOT NULL,
	`route` text NOT NULL,
	`status` integer NOT NULL,
	`body` text NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `idempotency_uq` ON `idempotency_keys` (`user_id`,`key`,`route`);--> statement-breakpoint
CREATE INDEX `idempotency_at_idx` ON `idempotency_keys` (`at`);--> statement-breakpoint
CREATE TABLE `secrets` (
	`name` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `users` (
	`id` text PRIMARY KEY NOT NULL,
	`username` text NOT NULL,
	`password_hash` text NOT NULL,
	`role` text NOT NULL,
	`unit_id` text,
	`display_name` text,
	`disabled_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `users_username_uq` ON `users` (`username`);--> statement-breakpoint
CREATE TABLE `commands` (
	`id` text PRIMARY KEY NOT NULL,
	`device_id` text NOT NULL,
	`type` text NOT NULL,
	`params` text DEFAULT '{}' NOT NULL,
	`incident_id` text,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`sent_at` integer,
	`acked_at` integer,
	`expires_at` integer NOT NULL,
	`error` text
);
--> statement-breakpoint
CREATE INDEX `commands_device_status_idx` ON `commands` (`device_id`,`status`);--> statement-breakpoint
CREATE TABLE `device_state` (
	`device_id` text PRIMARY KEY NOT NULL,
	`online` integer DEFAULT false NOT NULL,
	`last_seen` integer,
	`connected_at` integer,
	`battery` integer,
	`signal` integer,
	`mains` integer,
	`position` text,
	`supervision` text DEFAULT 'never-seen' NOT NULL,
	`unreadable_count` integer DEFAULT 0 NOT NULL,
	`last_unreadable_at` integer,
	`last_unreadable_reason` text,
	`flags` text DEFAULT '[]' NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`device_id`) REFERENCES `devices`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `devices` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`serial` text NOT NULL,
	`model` text,
	`firmware` text,
	`state` text NOT NULL,
	`resident_id` text,
	`secret_hash` text NOT NULL,
	`secret_rotated_at` integer NOT NULL,
	`power` text DEFAULT 'battery' NOT NULL,
	`config` text DEFAULT '{}' NOT NULL,
	`notes` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`resident_id`) REFERENCES `residents`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `devices_serial_uq` ON `devices` (`serial`);--> statement-breakpoint
CREATE INDEX `devices_resident_idx` ON `devices` (`resident_id`);--> statement-breakpoint
CREATE INDEX `devices_kind_state_idx` ON `devices` (`kind`,`state`);--> statement-breakpoint
CREATE TABLE `observations` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device_id` text NOT NULL,
	`type` text NOT NULL,
	`seq` integer,
	`device_ts` integer,
	`received_at` integer NOT NULL,
	`source` text NOT NULL,
	`life_safety` integer NOT NULL,
	`data` text NOT NULL,
	`flags` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `observations_dedup_uq` ON `observations` (`device_id`,`seq`,`device_ts`);--> statement-breakpoint
CREATE INDEX `observations_device_idx` ON `observations` (`device_id`,`id`);--> statement-breakpoint
CREATE INDEX `observations_received_idx` ON `observations` (`received_at`);--> statement-breakpoint
CREATE TABLE `rejects` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`device_id` text,
	`source` text NOT NULL,
	`topic` text,
	`reason` text NOT NULL,
	`raw` text NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `rejects_device_idx` ON `rejects` (`device_id`,`id`);--> statement-breakpoint
CREATE TABLE `residents` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`address` text,
	`unit_id` text,
	`contacts` text DEFAULT '[]' NOT NULL,
	`safe_zone` text,
	`home` text,
	`no_movement_s` integer,
	`check_in_by` text,
	`notes` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `residents_unit_idx` ON `residents` (`unit_id`);--> statement-breakpoint
CREATE TABLE `incident_events` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`incident_id` text NOT NULL,
	`type` text NOT NULL,
	`at` integer NOT NULL,
	`actor` text,
	`unit_id` text,
	`data` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `incident_events_incident_idx` ON `incident_events` (`incident_id`,`seq`);--> statement-breakpoint
CREATE TABLE `incidents` (
	`id` text PRIMARY KEY NOT NULL,
	`device_id` text NOT NULL,
	`resident_id` text,
	`unit_id` text,
	`tier_unit_id` text,
	`escalation_level` integer DEFAULT 0 NOT NULL,
	`type` text NOT NULL,
	`priority` text NOT NULL,
	`status` text NOT NULL,
	`test` integer DEFAULT false NOT NULL,
	`count` integer DEFAULT 1 NOT NULL,
	`opened_at` integer NOT NULL,
	`last_at` integer NOT NULL,
	`deadline_at` integer,
	`position` text,
	`stamps` text DEFAULT '{}' NOT NULL,
	`assignee` text,
	`outcome` text,
	`last_seq` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `incidents_open_idx` ON `incidents` (`device_id`,`type`,`status`);--> statement-breakpoint
CREATE INDEX `incidents_status_prio_idx` ON `incidents` (`status`,`priority`);--> statement-breakpoint
CREATE INDEX `incidents_unit_idx` ON `incidents` (`unit_id`);--> statement-breakpoint
CREATE INDEX `incidents_deadline_idx` ON `incidents` (`deadline_at`);--> statement-breakpoint
CREATE INDEX `incidents_opened_idx` ON `incidents` (`opened_at`);--> statement-breakpoint
CREATE TABLE `staff` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`role` text NOT NULL,
	`unit_id` text NOT NULL,
	`phone` text,
	`user_id` text,
	`on_duty` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `staff_unit_idx` ON `staff` (`unit_id`);--> statement-breakpoint
CREATE TABLE `units` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`tier` text NOT NULL,
	`parent_id` text,
	`phone` text,
	`webhook` text,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `units_parent_idx` ON `units` (`parent_id`);