-- Issue 13 §5: JSON bodies were type-coerced, so "unitId": null could be stored as "" — a unit id that names no
-- unit. No unit is NULL; these rows said "none" and now say it the one way the code and the scope filters expect.
UPDATE `residents` SET `unit_id` = NULL WHERE `unit_id` = '';--> statement-breakpoint
UPDATE `users` SET `unit_id` = NULL WHERE `unit_id` = '';--> statement-breakpoint
UPDATE `incidents` SET `unit_id` = NULL WHERE `unit_id` = '';--> statement-breakpoint
UPDATE `incidents` SET `tier_unit_id` = NULL WHERE `tier_unit_id` = '';--> statement-breakpoint
UPDATE `incident_events` SET `unit_id` = NULL WHERE `unit_id` = '';
