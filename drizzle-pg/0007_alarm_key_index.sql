DROP INDEX "observations_dedup_gen_uq";--> statement-breakpoint
DROP INDEX "observations_device_idx";--> statement-breakpoint
CREATE UNIQUE INDEX "observations_alarm_key_uq" ON "observations" USING btree ("device_id","seq","device_ts","generation") WHERE "observations"."life_safety";--> statement-breakpoint
CREATE UNIQUE INDEX "observations_other_key_uq" ON "observations" USING btree ("device_id","seq","device_ts","generation") WHERE NOT "observations"."life_safety";--> statement-breakpoint
CREATE INDEX "observations_other_device_idx" ON "observations" USING btree ("device_id","id") WHERE NOT "observations"."life_safety";