CREATE TABLE `incident_receipts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`incident_id` text NOT NULL,
	`kind` text NOT NULL,
	`seq` integer NOT NULL,
	`at` integer NOT NULL,
	`user_id` text,
	`username` text
);
--> statement-breakpoint
CREATE INDEX `incident_receipts_incident_idx` ON `incident_receipts` (`incident_id`,`at`);--> statement-breakpoint
CREATE UNIQUE INDEX `incident_receipts_pushed_once` ON `incident_receipts` (`incident_id`) WHERE kind = 'pushed';--> statement-breakpoint
CREATE UNIQUE INDEX `incident_receipts_delivered_once` ON `incident_receipts` (`incident_id`,`user_id`) WHERE kind = 'delivered';--> statement-breakpoint
-- Receipts leave the incident log (issue 10): every `pushed` / `delivered` event becomes a receipt with its own
-- time, user and frame seq; the first of each kind stays the incident's stamp. Their seq numbers become gaps in the
-- log: incident_events is AUTOINCREMENT, so a seq is never reused, and a console resuming from any seq gets every
-- event after it that exists (docs/websocket.md, "Gaps").
INSERT OR IGNORE INTO `incident_receipts` (`incident_id`, `kind`, `seq`, `at`, `user_id`, `username`)
  SELECT `incident_id`, `type`, coalesce(json_extract(`data`, '$.seq'), `seq`), `at`,
         CASE WHEN `type` = 'delivered' THEN `actor` END, json_extract(`data`, '$.username')
  FROM `incident_events` WHERE `type` IN ('pushed', 'delivered') ORDER BY `seq`;--> statement-breakpoint
UPDATE `incidents` SET `stamps` = json_set(`stamps`, '$.pushed',
    (SELECT min(r.`at`) FROM `incident_receipts` r WHERE r.`incident_id` = `incidents`.`id` AND r.`kind` = 'pushed'))
  WHERE json_extract(`stamps`, '$.pushed') IS NULL
    AND EXISTS (SELECT 1 FROM `incident_receipts` r WHERE r.`incident_id` = `incidents`.`id` AND r.`kind` = 'pushed');--> statement-breakpoint
UPDATE `incidents` SET `stamps` = json_set(`stamps`, '$.delivered',
    (SELECT min(r.`at`) FROM `incident_receipts` r WHERE r.`incident_id` = `incidents`.`id` AND r.`kind` = 'delivered'))
  WHERE json_extract(`stamps`, '$.delivered') IS NULL
    AND EXISTS (SELECT 1 FROM `incident_receipts` r WHERE r.`incident_id` = `incidents`.`id` AND r.`kind` = 'delivered');--> statement-breakpoint
DELETE FROM `incident_events` WHERE `type` IN ('pushed', 'delivered');--> statement-breakpoint
-- an incident whose last event was a receipt: its last seq is now its last remaining event
UPDATE `incidents` SET `last_seq` = coalesce((SELECT max(e.`seq`) FROM `incident_events` e WHERE e.`incident_id` = `incidents`.`id`), `last_seq`)
  WHERE NOT EXISTS (SELECT 1 FROM `incident_events` e WHERE e.`seq` = `incidents`.`last_seq`);
