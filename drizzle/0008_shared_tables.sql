CREATE TABLE `shared_pending` (
	`tbl` text NOT NULL,
	`key` text NOT NULL,
	`failed` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `shared_pending_uq` ON `shared_pending` (`tbl`,`key`);--> statement-breakpoint
CREATE TABLE `shared_sync` (
	`id` integer PRIMARY KEY NOT NULL,
	`cluster` text NOT NULL,
	`head` integer NOT NULL,
	`session` integer DEFAULT 0 NOT NULL
);
