CREATE TABLE "incident_events" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"incident_id" text NOT NULL,
	"type" text NOT NULL,
	"at" bigint NOT NULL,
	"actor" text,
	"unit_id" text,
	"data" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "incident_log_head" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"seq" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "incident_log_head_one_row" CHECK ("incident_log_head"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "incidents" (
	"id" text PRIMARY KEY NOT NULL,
	"device_id" text NOT NULL,
	"resident_id" text,
	"unit_id" text,
	"tier_unit_id" text,
	"escalation_level" integer DEFAULT 0 NOT NULL,
	"type" text NOT NULL,
	"priority" text NOT NULL,
	"status" text NOT NULL,
	"test" boolean DEFAULT false NOT NULL,
	"count" integer DEFAULT 1 NOT NULL,
	"opened_at" bigint NOT NULL,
	"last_at" bigint NOT NULL,
	"deadline_at" bigint,
	"position" jsonb,
	"stamps" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"assignee" text,
	"outcome" text,
	"last_seq" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "incident_events_incident_idx" ON "incident_events" USING btree ("incident_id","seq");--> statement-breakpoint
CREATE INDEX "incidents_open_idx" ON "incidents" USING btree ("device_id","type","status");--> statement-breakpoint
CREATE UNIQUE INDEX "incidents_one_open" ON "incidents" USING btree ("device_id","type","test") WHERE status NOT IN ('resolved', 'cancelled');--> statement-breakpoint
CREATE INDEX "incidents_status_prio_idx" ON "incidents" USING btree ("status","priority");--> statement-breakpoint
CREATE INDEX "incidents_unit_idx" ON "incidents" USING btree ("unit_id");--> statement-breakpoint
CREATE INDEX "incidents_deadline_idx" ON "incidents" USING btree ("deadline_at");--> statement-breakpoint
CREATE INDEX "incidents_opened_idx" ON "incidents" USING btree ("opened_at");--> statement-breakpoint
-- the log's head row, written here (data, not schema: drizzle-kit does not generate it)
INSERT INTO "incident_log_head" ("id", "seq") VALUES (1, 0) ON CONFLICT DO NOTHING;
