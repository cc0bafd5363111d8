CREATE TABLE "incident_receipts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"incident_id" text NOT NULL,
	"kind" text NOT NULL,
	"seq" bigint NOT NULL,
	"at" bigint NOT NULL,
	"user_id" text,
	"username" text
);
--> statement-breakpoint
CREATE INDEX "incident_receipts_incident_idx" ON "incident_receipts" USING btree ("incident_id","at");--> statement-breakpoint
CREATE UNIQUE INDEX "incident_receipts_pushed_once" ON "incident_receipts" USING btree ("incident_id") WHERE kind = 'pushed';--> statement-breakpoint
CREATE UNIQUE INDEX "incident_receipts_delivered_once" ON "incident_receipts" USING btree ("incident_id","user_id") WHERE kind = 'delivered';