ALTER TABLE `devices` ADD `test` integer DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE `residents` ADD `test` integer DEFAULT false NOT NULL;