DROP INDEX "incidents_one_open";--> statement-breakpoint
ALTER TABLE "incidents" ADD COLUMN "account" text;--> statement-breakpoint
CREATE UNIQUE INDEX "incidents_one_open" ON "incidents" USING btree ("device_id","type","test",coalesce("resident_id", ''),coalesce("account", '')) WHERE status NOT IN ('resolved', 'cancelled');