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
