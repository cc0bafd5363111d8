CREATE TABLE `receipt_replica` (
	`id` integer PRIMARY KEY NOT NULL,
	`head` integer NOT NULL
);
