CREATE TABLE "notification_claims" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"node" text NOT NULL,
	"at" bigint NOT NULL
);
