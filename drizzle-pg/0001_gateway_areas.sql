CREATE TABLE "commands" (
	"id" text PRIMARY KEY NOT NULL,
	"n" bigserial NOT NULL,
	"device_id" text NOT NULL,
	"type" text NOT NULL,
	"params" json DEFAULT '{}'::json NOT NULL,
	"incident_id" text,
	"status" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"created_at" bigint NOT NULL,
	"sent_at" bigint,
	"acked_at" bigint,
	"expires_at" bigint NOT NULL,
	"error" text
);
--> statement-breakpoint
CREATE TABLE "device_state" (
	"device_id" text PRIMARY KEY NOT NULL,
	"online" boolean DEFAULT false NOT NULL,
	"last_seen" bigint,
	"connected_at" bigint,
	"battery" double precision,
	"signal" double precision,
	"mains" boolean,
	"position" jsonb,
	"supervision" text DEFAULT 'never-seen' NOT NULL,
	"unreadable_count" integer DEFAULT 0 NOT NULL,
	"last_unreadable_at" bigint,
	"last_unreadable_reason" text,
	"flags" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"updated_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "observations" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"device_id" text NOT NULL,
	"type" text NOT NULL,
	"seq" bigint,
	"device_ts" bigint,
	"received_at" bigint NOT NULL,
	"source" text NOT NULL,
	"life_safety" boolean NOT NULL,
	"data" json NOT NULL,
	"flags" json,
	"session" text,
	"packet_id" integer,
	"generation" integer DEFAULT 0 NOT NULL,
	"incident_id" text
);
--> statement-breakpoint
CREATE TABLE "rejects" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"device_id" text,
	"source" text NOT NULL,
	"topic" text,
	"reason" text NOT NULL,
	"raw" text NOT NULL,
	"at" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "commands_device_status_idx" ON "commands" USING btree ("device_id","status");--> statement-breakpoint
CREATE UNIQUE INDEX "observations_dedup_gen_uq" ON "observations" USING btree ("device_id","seq","device_ts","generation");--> statement-breakpoint
CREATE INDEX "observations_keyless_idx" ON "observations" USING btree ("device_id","packet_id") WHERE "observations"."seq" IS NULL AND "observations"."packet_id" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "observations_device_idx" ON "observations" USING btree ("device_id","id");--> statement-breakpoint
CREATE INDEX "observations_received_idx" ON "observations" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "rejects_device_idx" ON "rejects" USING btree ("device_id","id");