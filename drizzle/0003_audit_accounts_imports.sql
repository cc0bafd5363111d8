CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`actor_id` text NOT NULL,
	`actor` text NOT NULL,
	`role` text,
	`ip` text,
	`action` text NOT NULL,
	`target_type` text NOT NULL,
	`target_id` text NOT NULL,
	`details` text DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE INDEX `audit_at_idx` ON `audit_log` (`at`);--> statement-breakpoint
CREATE INDEX `audit_target_idx` ON `audit_log` (`target_type`,`target_id`,`id`);--> statement-breakpoint
CREATE INDEX `audit_actor_idx` ON `audit_log` (`actor`,`id`);--> statement-breakpoint
CREATE INDEX `audit_action_idx` ON `audit_log` (`action`,`id`);--> statement-breakpoint
CREATE TABLE `device_imports` (
	`id` text PRIMARY KEY NOT NULL,
	`status` text NOT NULL,
	`count` integer NOT NULL,
	`actor` text,
	`error` text,
	`started_at` integer NOT NULL,
	`finished_at` integer
);
--> statement-breakpoint
ALTER TABLE `devices` ADD `account_scheme` text;--> statement-breakpoint
ALTER TABLE `devices` ADD `account` text;--> statement-breakpoint
ALTER TABLE `devices` ADD `import_id` text;--> statement-breakpoint
CREATE INDEX `devices_import_idx` ON `devices` (`import_id`);--> statement-breakpoint
-- Contact ID accounts move from config.account to the unique column. Where two devices claimed one account, or a
-- claim named another device's serial (which the old lookup let it steal), the oldest device keeps it; the others'
-- claims are kept as config.accountConflict, written to the audit log and logged at start-up for an admin to resolve.
-- Decommissioned devices routed nothing and claim nothing: their config.account stays as inert configuration.
UPDATE `devices` SET `account_scheme` = 'contact-id', `account` = CAST(json_extract(devices.config, '$.account') AS TEXT)
WHERE json_type(devices.config, '$.account') IN ('text', 'integer') AND devices.state <> 'decommissioned'
  AND NOT EXISTS (SELECT 1 FROM `devices` o WHERE o.id <> devices.id AND json_type(o.config, '$.account') IN ('text', 'integer') AND o.state <> 'decommissioned'
    AND CAST(json_extract(o.config, '$.account') AS TEXT) = CAST(json_extract(devices.config, '$.account') AS TEXT)
    AND (o.created_at < devices.created_at OR (o.created_at = devices.created_at AND o.id < devices.id)))
  AND NOT EXISTS (SELECT 1 FROM `devices` o WHERE o.id <> devices.id AND o.state <> 'decommissioned'
    AND o.serial = CAST(json_extract(devices.config, '$.account') AS TEXT)
    AND (o.created_at < devices.created_at OR (o.created_at = devices.created_at AND o.id < devices.id)));--> statement-breakpoint
INSERT INTO `audit_log` (`at`, `actor_id`, `actor`, `role`, `ip`, `action`, `target_type`, `target_id`, `details`)
SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER), 'system', 'migration 0003', NULL, NULL, 'device.account-conflict', 'device', d.id,
  json_object('scheme', 'contact-id', 'account', CAST(json_extract(d.config, '$.account') AS TEXT),
    'heldBy', coalesce((SELECT o.id FROM `devices` o WHERE o.account_scheme = 'contact-id' AND o.account = CAST(json_extract(d.config, '$.account') AS TEXT)),
                       (SELECT o.id FROM `devices` o WHERE o.serial = CAST(json_extract(d.config, '$.account') AS TEXT) AND o.id <> d.id)),
    'resolution', 'an older device holds this account: this claim was dropped (kept as config.accountConflict); an admin sets the right device with PATCH /api/devices/:id {"account": ...}')
FROM `devices` d WHERE json_type(d.config, '$.account') IN ('text', 'integer') AND d.state <> 'decommissioned' AND d.account IS NULL;--> statement-breakpoint
UPDATE `devices` SET `config` = json_set(json_remove(`config`, '$.account'), '$.accountConflict', json_extract(`config`, '$.account'))
WHERE json_type(devices.config, '$.account') IN ('text', 'integer') AND devices.state <> 'decommissioned' AND `account` IS NULL;--> statement-breakpoint
UPDATE `devices` SET `config` = json_remove(`config`, '$.account') WHERE `account` IS NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX `devices_account_uq` ON `devices` (`account_scheme`,`account`);--> statement-breakpoint
-- append-only: no path in code changes an audit entry, and the database refuses it too
CREATE TRIGGER `audit_log_no_update` BEFORE UPDATE ON `audit_log` BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;--> statement-breakpoint
CREATE TRIGGER `audit_log_no_delete` BEFORE DELETE ON `audit_log` BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
