CREATE TABLE "notification_claims" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"node" text NOT NULL,
	"at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "shared_head" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"cluster" text NOT NULL,
	"seq" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "shared_head_one_row" CHECK ("shared_head"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "shared_rows" (
	"tbl" text NOT NULL,
	"key" text NOT NULL,
	"seq" bigint NOT NULL,
	"row" json,
	CONSTRAINT "shared_rows_tbl_key_pk" PRIMARY KEY("tbl","key")
);
--> statement-breakpoint
CREATE INDEX "shared_rows_seq_idx" ON "shared_rows" USING btree ("seq","tbl","key");--> statement-breakpoint
-- the shared tables' head row, with this database's id, written here (data, not schema: drizzle-kit does not generate it)
INSERT INTO "shared_head" ("id", "cluster", "seq") VALUES (1, gen_random_uuid()::text, 0) ON CONFLICT DO NOTHING;
