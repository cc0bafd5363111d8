CREATE TABLE "receipt_log_head" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"seq" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "receipt_log_head_one_row" CHECK ("receipt_log_head"."id" = 1)
);
--> statement-breakpoint
-- receipts written before this migration are numbered by their ids (written by hand: drizzle-kit would add the column
-- NOT NULL at once, which fails on a table with rows)
ALTER TABLE "incident_receipts" ADD COLUMN "rseq" bigint;--> statement-breakpoint
UPDATE "incident_receipts" SET "rseq" = "id";--> statement-breakpoint
ALTER TABLE "incident_receipts" ALTER COLUMN "rseq" SET NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "incident_receipts_rseq_idx" ON "incident_receipts" USING btree ("rseq");--> statement-breakpoint
-- the head row (data, not schema: drizzle-kit does not generate it), after what is there
INSERT INTO "receipt_log_head" ("id", "seq") SELECT 1, coalesce(max("rseq"), 0) FROM "incident_receipts" ON CONFLICT DO NOTHING;
