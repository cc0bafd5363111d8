// One configuration schema, validated once at start-up with every error reported at once.
// Environment overrides are derived from the schema: `mqtt.port` ← ELDERGATE_MQTT_PORT, and so on.
import { readFileSync } from 'node:fs';
import { Type, type Static, type TSchema, type TObject, Kind } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { PRIORITIES } from './contracts.js';
import { ConfigError } from './errors.js';
import { MAX_PAGE_ROWS } from './limits.js';
import { RuleSettingsSchema } from '../gateway/rules/settings.js';
import { ProtocolsSchema } from '../gateway/protocols/settings.js';

const Port = (def: number) => Type.Integer({ minimum: 0, maximum: 65535, default: def });
const Budget = (push: number, ack: number, reach: number) =>
  Type.Object(
    {
      pushMs: Type.Integer({ minimum: 1, default: push, description: 'push to consoles' }),
      ackMs: Type.Integer({ minimum: 1, default: ack, description: 'acknowledge before escalation, per tier' }),
      reachMs: Type.Integer({ minimum: 1, default: reach, description: 'reach the resident' }),
    },
    { default: {} },
  );

export const DataRuleSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, pattern: '^[a-z0-9-]+$' }),
    /** which observations the rule looks at */
    on: Type.String({ minLength: 1, description: 'observation type, e.g. battery, heartbeat' }),
    kinds: Type.Optional(Type.Array(Type.String())),
    condition: Type.Union([
      Type.Object({
        type: Type.Literal('simple'),
        field: Type.String(),
        op: Type.Union([Type.Literal('<'), Type.Literal('<='), Type.Literal('>'), Type.Literal('>='), Type.Literal('=='), Type.Literal('!=')]),
        value: Type.Union([Type.Number(), Type.String(), Type.Boolean()]),
      }),
      Type.Object({
        type: Type.Literal('duration'),
        field: Type.String(),
        op: Type.Union([Type.Literal('<'), Type.Literal('<='), Type.Literal('>'), Type.Literal('>='), Type.Literal('=='), Type.Literal('!=')]),
        value: Type.Union([Type.Number(), Type.String(), Type.Boolean()]),
        forMs: Type.Integer({ minimum: 1 }),
      }),
      Type.Object({
        type: Type.Literal('repeating'),
        field: Type.String(),
        op: Type.Union([Type.Literal('<'), Type.Literal('<='), Type.Literal('>'), Type.Literal('>='), Type.Literal('=='), Type.Literal('!=')]),
        value: Type.Union([Type.Number(), Type.String(), Type.Boolean()]),
        count: Type.Integer({ minimum: 2 }),
        withinMs: Type.Optional(Type.Integer({ minimum: 1 })),
      }),
      Type.Object({
        type: Type.Literal('absence'),
        forMs: Type.Integer({ minimum: 1 }),
      }),
    ]),
    alarm: Type.String({ minLength: 1, description: 'incident type to raise' }),
    priority: Type.Union(PRIORITIES.map((p) => Type.Literal(p))),
  },
  { additionalProperties: false },
);
export type DataRule = Static<typeof DataRuleSchema>;

/** a notification channel's name: what a contact's or a unit's `webhook` holds */
export const NOTIFY_CHANNEL_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';

export const NotifyChannelSchema = Type.Object(
  {
    url: Type.String({ pattern: '^https?://\\S+$', maxLength: 2000 }),
    /** HMAC key for this channel; or `secretEnv`, the environment variable holding it; else `notifiers.webhookSecret` */
    secret: Type.Optional(Type.String({ minLength: 16 })),
    secretEnv: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' })),
    /**
     * may post to loopback, private (RFC 1918), unique-local and carrier-grade NAT addresses; link-local (cloud
     * metadata), unspecified, multicast and reserved addresses are refused even then
     */
    allowPrivate: Type.Optional(Type.Boolean({ default: false })),
    description: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type NotifyChannel = Static<typeof NotifyChannelSchema>;

/** why a row budget has its minimum */
const LARGEST_PAGE = `at least the largest page (${MAX_PAGE_ROWS} rows), which is charged in full`;

export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({ default: './data', minLength: 1 }),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    /** the host name devices and consoles use to reach this gateway (returned in provisioning answers) */
    publicHost: Type.String({ default: 'localhost' }),
    adminPassword: Type.Optional(Type.String({ minLength: 12, description: 'initial admin password (first start only)' })),
    /** accounts: where the token-signing key lives, login throttling (docs/security.md) */
    auth: Type.Object(
      {
        /**
         * the token-signing key file (JSON, created 0600 on first start); default: beside the data directory,
         * `<dataDir>-keys/token-signing-key.json`, so that a copy of the database or of the data directory cannot mint tokens
         */
        keyFile: Type.Optional(Type.String({ minLength: 1 })),
        /** the token-signing key itself (≥ 32 characters, e.g. `openssl rand -base64 48`); when set, no key file is used */
        signingKey: Type.Optional(Type.String({ minLength: 32 })),
        /** the previous signing key, still accepted for verification (rotation of an environment-held key) */
        previousSigningKey: Type.Optional(Type.String({ minLength: 32 })),
        /** login attempts from one address per minute, whatever the account (before the password is even hashed) */
        loginAttemptsPerAddress: Type.Integer({ minimum: 1, default: 120, description: 'generous: a call centre behind one NAT logs 40 consoles in at a shift change' }),
        /** failed logins of one account from one address per window; then that pair waits (429 + Retry-After) */
        loginFailuresPerAccountAddress: Type.Integer({ minimum: 1, default: 5 }),
        /**
         * failed logins of one account from all addresses together per window; then addresses that never logged in to
         * it wait, while an address it logged in from before is still let through (no lock-out of the real operator)
         */
        loginFailuresPerAccount: Type.Integer({ minimum: 1, default: 50 }),
        loginFailureWindowS: Type.Integer({ minimum: 1, maximum: 86_400, default: 900 }),
      },
      { default: {} },
    ),
    tls: Type.Object(
      {
        certFile: Type.Optional(Type.String()),
        keyFile: Type.Optional(Type.String()),
      },
      { default: {} },
    ),
    mqtt: Type.Object(
      {
        host: Type.String({ default: '0.0.0.0' }),
        port: Port(1883),
        tlsPort: Port(8883),
        /** largest packet accepted from a device, bytes [MQTT-3.1.2-24 spirit: the server bounds what it reads] */
        maxPacketBytes: Type.Integer({ minimum: 256, default: 16384 }),
        /** bytes a connection may send before its CONNECT is accepted */
        maxPreConnectBytes: Type.Integer({ minimum: 64, default: 32768 }),
        connectTimeoutMs: Type.Integer({ minimum: 100, default: 5000 }),
        keepaliveLimitS: Type.Integer({ minimum: 1, default: 1200 }),
        maxConnections: Type.Integer({ minimum: 1, default: 120000 }),
        maxConnectionsPerAddress: Type.Integer({ minimum: 1, default: 120000 }),
        /**
         * CONNECTs in progress (being authenticated, session restored, CONNACK not yet written) beyond which a new
         * CONNECT is answered at once with CONNACK "server unavailable" (return code 3), counted as
         * eldergate_connections_refused_total{reason="admission"}; devices back off and retry (docs/design.md §2).
         * Not too low: one turn of the event loop parses every CONNECT its poll phase read, so in a storm hundreds are
         * "in progress" at once for a moment. At 256, 14,000 terminals dropped and back took 47.8 s (20,088 CONNACK 3,
         * each a back-off of seconds for a device the gateway would have served within the turn); at 2,048, six took
         * 4.1–6.2 s with none refused (`npm run bench -- --only=4`; bench/analysis.md)
         */
        maxConnectsInProgress: Type.Integer({ minimum: 1, default: 2048 }),
        /**
         * failed CONNECTs (bad secret, unknown device, malformed) from one address within connectFailureWindowMs
         * after which that address is refused at accept for connectBackoffMs (0 = never); devices behind one
         * carrier NAT share an address: keep it well above what one misconfigured terminal does
         */
        connectFailureLimit: Type.Integer({ minimum: 0, default: 50 }),
        connectFailureWindowMs: Type.Integer({ minimum: 100, default: 10_000 }),
        connectBackoffMs: Type.Integer({ minimum: 100, default: 30_000 }),
        /**
         * Messages a device may publish per second, sustained, after a burst of publishBurst (0: no limit — only for
         * measuring the pipeline's own capacity, as `npm run bench` does). Beyond it nothing is dropped or reordered:
         * the messages already read are processed, and the device's connection is read again only when it is back
         * within its rate (its PUBACKs wait), so TCP pushes back on it. A flooding device then cannot take the main
         * thread from everyone else's alarms. A device's own alarm pays no token (docs/security.md).
         */
        publishRatePerS: Type.Integer({ minimum: 0, default: 100 }),
        publishBurst: Type.Integer({ minimum: 1, default: 1000 }),
        /**
         * a device over its rate this long (ms) without getting back under it is disconnected: what it queued behind
         * its flood, its own alarm among it, would otherwise wait for the flood at its rate (0 = never)
         */
        publishOverRateCloseMs: Type.Integer({ minimum: 0, default: 30_000 }),
      },
      { default: {} },
    ),
    http: Type.Object(
      {
        host: Type.String({ default: '0.0.0.0' }),
        port: Port(8080),
        /** origins allowed to open the WebSocket, besides the server's own */
        allowedOrigins: Type.Array(Type.String(), { default: [] }),
        /** token lifetime; at most 24 h (a console in use renews its token, so a short one costs nothing) */
        tokenTtlS: Type.Integer({ minimum: 60, maximum: 24 * 3600, default: 12 * 3600 }),
        /** /metrics answers without a token (Prometheus on a private network); false: an admin token or metricsToken */
        metricsPublic: Type.Boolean({ default: true }),
        /** a bearer token for scrapers when metricsPublic is false (≥ 32 characters) */
        metricsToken: Type.Optional(Type.String({ minLength: 32 })),
        /** /docs/json (the OpenAPI document) answers without a token; false: an admin token is needed */
        docsPublic: Type.Boolean({ default: false }),
        wsMaxPayloadBytes: Type.Integer({ minimum: 256, default: 16384 }),
        /** frames queued for a console before it is cut off and must resume by sequence */
        wsMaxBufferedBytes: Type.Integer({ minimum: 1024, default: 4 * 1024 * 1024 }),
        /** the server pings each console this often; one unanswered ping ends the connection */
        wsPingIntervalMs: Type.Integer({ minimum: 100, default: 30_000 }),
        /** open WebSockets one user may hold at once; more are closed with 4429 */
        wsMaxPerUser: Type.Integer({ minimum: 1, default: 8 }),
        /** frames (messages, pings) a console may send per second; beyond, its socket is paused (TCP back-pressure) */
        wsMaxMessagesPerSecond: Type.Integer({ minimum: 1, default: 500 }),
        /**
         * API requests handled at once (all users); more wait their turn, in order (server/plugins/api-admission.ts):
         * what the API queues on the main thread, which also reads the devices' sockets, stays a few requests' worth
         */
        apiConcurrency: Type.Integer({ minimum: 1, default: 2 }),
        /** API requests waiting for a turn at most; beyond, 503 BUSY at once */
        apiQueue: Type.Integer({ minimum: 1, default: 1000 }),
        /**
         * reads (GET) one user may make a second; beyond, 429 answered when the second ends (a console opened on 600
         * open incidents loads their 600 devices one request each, so this is not small)
         */
        apiReadsPerUserPerS: Type.Integer({ minimum: 1, default: 300 }),
        /**
         * rows one user's pages may ask for a second (the `limit` of each list read): beyond, a page waits for its
         * rows, paced; a page that would wait over 5 s is refused (429)
         */
        apiRowsPerUserPerS: Type.Integer({ minimum: MAX_PAGE_ROWS, default: 5000, description: LARGEST_PAGE }),
        /**
         * rows all users' pages together may ask for a second, after each user's own budget, shared out in turn
         * between the users with pages waiting; a page whose waits would add up to over 5 s is refused (429). At
         * ~15-35 µs a row, 10,000 is 15-35 % of the main thread's core
         */
        apiRowsPerS: Type.Integer({ minimum: MAX_PAGE_ROWS, default: 10_000, description: LARGEST_PAGE }),
        /** other requests (actions, changes) one user may make a second, counted apart from reads */
        apiWritesPerUserPerS: Type.Integer({ minimum: 1, default: 30 }),
        /** HTTP + WebSocket sockets held at once (lowered to the descriptor budget, see limits) */
        maxConnections: Type.Integer({ minimum: 1, default: 10_000 }),
      },
      { default: {} },
    ),
    /** what the process may hold: descriptors, memory, log lines (docs/security.md) */
    limits: Type.Object(
      {
        /** descriptors kept free of sockets for the database, logs, serial ports, webhooks and the alarm path */
        fdReserve: Type.Integer({ minimum: 16, default: 256 }),
        /** share of the socket budget (fd limit − reserve) for HTTP + WebSocket; MQTT gets the rest */
        httpFdShare: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.25 }),
        /** resident memory above which telemetry is shed and a warning logged (0 = 1.5 × the V8 heap limit) */
        maxRssBytes: Type.Integer({ minimum: 0, default: 0 }),
        /** memory outside the V8 heap (Buffers, socket queues) above which the same happens (0 = ½ the V8 heap limit) */
        maxExternalBytes: Type.Integer({ minimum: 0, default: 0 }),
        /** repeated log lines (same kind, same device or address) written per window before they are only counted */
        logBurst: Type.Integer({ minimum: 1, default: 5 }),
        logWindowMs: Type.Integer({ minimum: 100, default: 60_000 }),
      },
      { default: {} },
    ),
    ingest: Type.Object(
      {
        maxPayloadBytes: Type.Integer({ minimum: 128, default: 4096 }),
        /**
         * How long queued telemetry waits before its commit begins (a full batch goes at once). Unset: 20 ms on one
         * node's SQLite, 200 ms on PostgreSQL (gateway/ingest.ts TELEMETRY_FLUSH_MS, PG_TELEMETRY_FLUSH_MS). Short on
         * SQLite so that the writer's work comes in short turns: on one core shared by the threads, 200 ms let 1,000
         * readings pile up at 5k msg/s, and an SOS that came during their turn waited for it (bench/analysis.md, 3 Dec
         * 11:50). A telemetry commit that someone waits on (QoS 1) is fsynced: on slow storage, a longer interval means
         * fewer syncs. PostgreSQL's batches do not hold up the writer's thread, and each is a durable commit of its own.
         */
        telemetryFlushMs: Type.Optional(Type.Integer({ minimum: 1 })),
        telemetryBatchRows: Type.Integer({ minimum: 1, default: 500, description: 'rows per telemetry commit: small enough that an alarm never waits long behind one' }),
        /** telemetry queued beyond this is shed (counted); alarms never are */
        telemetryQueueLimit: Type.Integer({ minimum: 100, default: 50000 }),
        /** QoS 1 telemetry beyond the queue waits for room (no PUBACK yet); beyond this many waiting it is refused */
        telemetryWaitersLimit: Type.Integer({ minimum: 1, default: 5000 }),
        /** heartbeats fold into device state; one is kept as a row on change or at most once per this long (0: all) */
        heartbeatHistoryMs: Type.Integer({ minimum: 0, default: 3_600_000 }),
        /**
         * A device's state row (last seen, battery, signal, position, online) is written this long after its first
         * unwritten change, with whatever changed meanwhile: a device sending ten readings a second costs one row
         * per interval, not one per reading. The row is only what a restart starts from (live state is read from
         * memory), so a crash can take back this much of last-seen; an alarm writes its device's row at once, and a
         * shutdown writes every row owed. 0: each change with the next commit. One-node SQLite only.
         */
        stateWriteBehindMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 1000 }),
        rejectsKept: Type.Integer({ minimum: 100, default: 10000 }),
        rejectRawBytes: Type.Integer({ minimum: 64, default: 2048 }),
        /**
         * How long a device's message waits, unacknowledged, for a writer thread that died to be replaced before it is
         * refused (no PUBACK / ACK; an MQTT connection is closed). Keep it below the shortest time after which your
         * terminals give up on the platform and call for help another way (0: refuse at once).
         */
        writerRestartHoldMs: Type.Integer({ minimum: 0, maximum: 120_000, default: 10_000 }),
        /**
         * How long the writer thread may say nothing (it reports its queues every 250 ms) before it is taken as stalled:
         * alarms are then not being stored. /readyz answers "writer-stalled", the log says so (fatal) and
         * eldergate_internal_errors_total{where="writer-stalled"} counts it; what it had not answered is held for the
         * next thread (and refused after writerRestartHoldMs), and the thread is ended and a new one started. A thread
         * looping in JavaScript ends at once; one stuck in a system call (an fsync on a hung disk) ends when the call
         * returns. Each message the writer handles counts as a word. Keep it above SQLite's busy timeout (5 s), the
         * longest a healthy writer waits on one write; 0: not watched.
         */
        writerStallMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 15_000 }),
        /**
         * The SQLite write-ahead log's soft limit. Under sustained telemetry the checkpointer never catches up with the
         * writer's last commit, and the log would never start again from its beginning: it grew by 25 MB/s at 10k msg/s
         * (docs/architecture.md, "The checkpointer"). Beyond this size the writer pauses telemetry for a few
         * milliseconds (never alarms) so that the checkpointer copies all of it back; the log then starts again.
         */
        walSoftLimitMB: Type.Integer({ minimum: 1, default: 32 }),
      },
      { default: {} },
    ),
    budgets: Type.Object(
      {
        P1: Budget(1000, 60_000, 15 * 60_000),
        P2: Budget(5000, 5 * 60_000, 60 * 60_000),
        P3: Budget(60_000, 4 * 3600_000, 24 * 3600_000),
      },
      { default: {} },
    ),
    supervision: Type.Object(
      {
        /** silent for interval × lateFactor → late; × offlineFactor → offline */
        lateFactor: Type.Number({ minimum: 1, default: 1.5 }),
        offlineFactor: Type.Number({ minimum: 1, default: 3 }),
        /** a device that flaps more than this many times in the window is damped */
        flapCount: Type.Integer({ minimum: 1, default: 4 }),
        flapWindowMs: Type.Integer({ minimum: 1000, default: 15 * 60_000 }),
        /** scale every kind's heartbeat interval (tests shorten it) */
        intervalScale: Type.Number({ exclusiveMinimum: 0, default: 1 }),
        /**
         * after a start-up, how long a device already past its offline limit (the gateway was down longer than that)
         * gets to reconnect before it is called offline; never less than the device's supervision interval
         */
        startupGraceMs: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'grace after start-up before a silent device is offline; at least one supervision interval' })),
      },
      { default: {} },
    ),
    rules: Type.Array(DataRuleSchema, { default: [] }),
    /** settings of the built-in rules: night hours, time zone, hysteresis, defaults */
    ruleSettings: RuleSettingsSchema,
    notifiers: Type.Object(
      {
        webhookSecret: Type.Optional(Type.String({ minLength: 16, description: 'HMAC key of every webhook without a secret of its own' })),
        /** admin-configured URLs told of every incident; public addresses only (use `broadcast` for an internal one) */
        webhookUrls: Type.Array(Type.String({ pattern: '^https?://\\S+$' }), { default: [] }),
        /**
         * Where notifications may go, by name. Operators and technicians put a channel's name in a contact's or a
         * unit's `webhook`, never a URL (docs/security.md, "Notification channels").
         */
        channels: Type.Record(Type.String({ pattern: NOTIFY_CHANNEL_NAME_PATTERN }), NotifyChannelSchema, {
          default: {},
          // a name outside the pattern would otherwise escape validation (and its url with it)
          additionalProperties: false,
          description: 'channel names: lower-case letters, digits, ".", "_", "-"; 1–64 characters',
        }),
        /** channels told of every opened and escalated incident, like `webhookUrls` */
        broadcast: Type.Array(Type.String({ pattern: NOTIFY_CHANNEL_NAME_PATTERN }), { default: [] }),
        retries: Type.Integer({ minimum: 0, default: 5 }),
        backoffMs: Type.Integer({ minimum: 10, default: 1000 }),
      },
      { default: {} },
    ),
    /** what is pruned, and when (core/retention.ts; docs/operations.md "Retention"); the audit log never is */
    retention: Type.Object(
      {
        /** observations (telemetry, heartbeats, alarms) older than this are deleted, unless an open incident points at them */
        telemetryDays: Type.Integer({ minimum: 1, default: 90 }),
        /** resolved and cancelled incidents (with their events) this long after their last activity; 0 = never */
        incidentsDays: Type.Integer({ minimum: 0, default: 3650, description: '0 = keep for ever; otherwise at least 30' }),
        /** how often the pruning runs (it also runs once at start) */
        intervalMs: Type.Integer({ minimum: 1000, default: 3600_000 }),
        /** rows deleted per transaction: small, so that an alarm never waits long behind one */
        batchRows: Type.Integer({ minimum: 1, maximum: 5000, default: 500 }),
      },
      { default: {} },
    ),
    modbus: Type.Array(Type.Unknown(), { default: [], description: 'Modbus links and register maps' }),
    serial: Type.Array(Type.Unknown(), { default: [], description: 'serial alarm receivers' }),
    /** terminal protocols spoken natively (gateway/protocols, docs/protocols.md): each off until its port is set */
    protocols: ProtocolsSchema,
    /**
     * Cluster mode (docs/scale-out.md): terminals connect to a RabbitMQ cluster (its MQTT plugin) instead of the
     * embedded broker. Off while `urls` is empty: the one-node default stays the embedded aedes.
     */
    rabbitmq: Type.Object(
      {
        /** AMQP URLs of the cluster's nodes, tried in turn (no credentials in them: see username and passwordFile) */
        urls: Type.Array(Type.String({ pattern: '^amqps?://[^@/]+(:[0-9]+)?(/.*)?$' }), { default: [] }),
        /** eldergate's own RabbitMQ user (an internal RabbitMQ user, not a device) */
        username: Type.String({ minLength: 1, default: 'eldergate' }),
        /** a file holding that user's password (mode 0600); required in cluster mode, never in the config itself */
        passwordFile: Type.Optional(Type.String({ minLength: 1 })),
        vhost: Type.String({ minLength: 1, default: '/' }),
        /** the topic exchange RabbitMQ's MQTT plugin publishes into (its `mqtt.exchange`); eldergate declares it */
        exchange: Type.String({ minLength: 1, pattern: '^[A-Za-z0-9._-]+$', default: 'eldergate.mqtt' }),
        /** partitions (quorum queues, one active consumer each) that device messages are hashed into by device topic */
        partitions: Type.Integer({ minimum: 1, maximum: 256, default: 8 }),
        /** unacknowledged messages per partition a node holds: the group commit's batch */
        prefetch: Type.Integer({ minimum: 1, maximum: 10000, default: 256 }),
        /** a message the writer fails this many times is dead-lettered and raised as an incident */
        deliveryLimit: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
        /** where RabbitMQ's HTTP auth backend asks whether a device may connect, publish, subscribe (keep it private) */
        authHost: Type.String({ minLength: 1, default: '127.0.0.1' }),
        authPort: Type.Integer({ minimum: 0, maximum: 65535, default: 0, description: 'required in cluster mode: the port in RabbitMQ\'s auth_http.*_path' }),
        /** the MQTT port devices are told to connect to in cluster mode (the load balancer's, in front of RabbitMQ) */
        mqttPort: Type.Integer({ minimum: 1, maximum: 65535, default: 1883 }),
        /** RabbitMQ's management API (same user): a revoked device's connections are closed through it */
        managementUrl: Type.Optional(Type.String({ pattern: '^https?://\\S+$' })),
        /**
         * how often a device's publish rate is read from RabbitMQ's statistics (its collect_statistics_interval, 5 s by
         * default, is as fresh as they get); one over mqtt.publishRatePerS for mqtt.publishOverRateCloseMs is closed
         */
        floodCheckMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 5000 }),
      },
      { default: {} },
    ),
    /**
     * Cluster mode's shared store (docs/scale-out.md): the incident log, observations, device states and commands in
     * PostgreSQL instead of this node's SQLite file; each node keeps a replica of the incident log in its file for its
     * consoles. Off until `url` is set; needs cluster mode (rabbitmq.urls).
     */
    postgres: Type.Object(
      {
        /** postgres://host:port/database, no credentials in it (see username and passwordFile) */
        url: Type.Optional(Type.String({ pattern: '^postgres(ql)?://[^@/]+(:[0-9]+)?/[A-Za-z0-9_]+$' })),
        username: Type.String({ minLength: 1, default: 'eldergate' }),
        /** a file holding that user's password (mode 0600); required with url, never in the config itself */
        passwordFile: Type.Optional(Type.String({ minLength: 1 })),
        /** connections of each of the node's two pools (the writer thread's, and the main thread's reads) */
        poolSize: Type.Integer({ minimum: 1, maximum: 100, default: 4 }),
      },
      { default: {} },
    ),
    /** the console's map (docs/operations.md "Map tiles"): without tileUrl it draws a schematic plot, needing no tiles */
    console: Type.Object(
      {
        /** a tile URL template, e.g. https://tiles.example.city/{z}/{x}/{y}.png; its origin is allowed in the page's CSP */
        tileUrl: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'http(s) tile URL template with {z}, {x} and {y}' })),
        /** shown in the map's corner, as plain text (the tile owner's licence usually asks for it) */
        tileAttribution: Type.String({ default: '', maxLength: 500 }),
        tileMaxZoom: Type.Integer({ minimum: 1, maximum: 24, default: 19 }),
      },
      { default: {} },
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;

/**
 * A tile URL the console can use and the CSP can name exactly: http(s), a literal host (no {s} subdomains: the
 * page may load images from that one origin only), and {z}, {x}, {y}. Returns the problem, or null.
 */
export function tileUrlProblem(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url.replace(/\{[zxy]\}/g, '0'));
  } catch {
    return 'not a URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `${parsed.protocol} is not http: or https:`;
  if (/[{}]/.test(parsed.host) || /\{[a-z]+\}/i.test(url.split('/').slice(0, 3).join('/'))) return 'the host must be written out (no {s} subdomains)';
  const missing = ['{z}', '{x}', '{y}'].filter((k) => !url.includes(k));
  if (missing.length) return `${missing.join(', ')} missing`;
  if (parsed.username || parsed.password) return 'credentials in the URL would be sent to every console';
  return null;
}

/** Leaf paths of the schema, to derive `ELDERGATE_A_B` overrides from `a.b`. */
function leafPaths(schema: TSchema, prefix: string[] = []): { path: string[]; schema: TSchema }[] {
  if (schema[Kind] === 'Object') {
    const props = (schema as TObject).properties;
    return Object.entries(props).flatMap(([key, s]) => leafPaths(s, [...prefix, key]));
  }
  return [{ path: prefix, schema }];
}

export const envName = (path: string[]) =>
  'ELDERGATE_' + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');

function coerce(raw: string, schema: TSchema): unknown {
  const kind = schema[Kind];
  // a string that is not a number stays a string, so the error can say so (Number('abc') is NaN, shown as null)
  if (kind === 'Integer' || kind === 'Number') return raw.trim() === '' || Number.isNaN(Number(raw)) ? raw : Number(raw);
  if (kind === 'Boolean') return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
  if (kind === 'Array' || kind === 'Object' || kind === 'Record') {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown) {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/**
 * Build the configuration from (in rising precedence) defaults, an optional JSON file
 * (`ELDERGATE_CONFIG`), environment variables, and explicit overrides (tests). Throws a ConfigError
 * listing every problem with the variable or key to fix.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Record<string, unknown> = {},
): Readonly<Config> {
  const input: Record<string, unknown> = {};
  const problems: string[] = [];
  const file = env.ELDERGATE_CONFIG;
  if (file) {
    try {
      Object.assign(input, JSON.parse(readFileSync(file, 'utf8')));
    } catch (err) {
      problems.push(`ELDERGATE_CONFIG=${file}: cannot read it as JSON (${(err as Error).message})`);
    }
  }
  const sources = new Map<string, string>();
  const leaves = leafPaths(ConfigSchema);
  problems.push(...unknownVariables(env, leaves.map((l) => envName(l.path))));
  for (const { path, schema } of leaves) {
    const name = envName(path);
    const raw = env[name];
    if (raw !== undefined) {
      setPath(input, path, coerce(raw, schema));
      sources.set('/' + path.join('/'), name);
    }
  }
  mergeDeep(input, overrides);
  problems.push(...unknownKeys(input, ConfigSchema, []));

  const withDefaults = Value.Default(ConfigSchema, Value.Clone(input)) as Config;
  const reported = new Set<string>();
  for (const e of Value.Errors(ConfigSchema, withDefaults)) {
    // a union reports once per branch; one line per setting is enough
    if (reported.has(e.path)) continue;
    reported.add(e.path);
    const where = sources.get(e.path) ?? (e.path || '/');
    problems.push(`${where}: ${describeError(e.schema, e.value, e.message)}`);
  }
  const { incidentsDays } = withDefaults.retention ?? {};
  if (typeof incidentsDays === 'number' && incidentsDays > 0 && incidentsDays < 30) {
    problems.push(`${sources.get('/retention/incidentsDays') ?? 'retention.incidentsDays'}: ${incidentsDays} days is too short to keep closed incidents for review; use 0 (never prune) or 30 or more`);
  }
  const rabbit = withDefaults.rabbitmq;
  if (rabbit && Array.isArray(rabbit.urls) && rabbit.urls.length > 0) {
    if (!rabbit.passwordFile) problems.push(`${sources.get('/rabbitmq/passwordFile') ?? 'rabbitmq.passwordFile'}: cluster mode (rabbitmq.urls) needs the file holding ${rabbit.username}'s RabbitMQ password (mode 0600)`);
    if (!rabbit.authPort) problems.push(`${sources.get('/rabbitmq/authPort') ?? 'rabbitmq.authPort'}: cluster mode (rabbitmq.urls) needs the port RabbitMQ's HTTP auth backend calls (the port in its auth_http.user_path)`);
  }
  const pgs = withDefaults.postgres;
  if (pgs && typeof pgs.url === 'string') {
    const at = (k: string) => sources.get(`/postgres/${k}`) ?? `postgres.${k}`;
    if (!pgs.passwordFile) problems.push(`${at('passwordFile')}: postgres.url is set, so the password of ${pgs.username} is needed: a file holding it, mode 0600`);
    if (!(rabbit && Array.isArray(rabbit.urls) && rabbit.urls.length > 0)) problems.push(`${at('url')}: the PostgreSQL store is for cluster mode; set rabbitmq.urls too (docs/scale-out.md), or remove postgres.url to run on this node's SQLite file`);
  }
  const floodCheckMs = rabbit?.floodCheckMs;
  if (typeof floodCheckMs === 'number' && floodCheckMs > 0 && floodCheckMs < 1000) {
    problems.push(`${sources.get('/rabbitmq/floodCheckMs') ?? 'rabbitmq.floodCheckMs'}: ${floodCheckMs} ms is too often (RabbitMQ sorts every channel for each reading); use 0 (never) or 1000 or more`);
  }
  const tileUrl = withDefaults.console?.tileUrl;
  const tileProblem = typeof tileUrl === 'string' ? tileUrlProblem(tileUrl) : null;
  if (tileProblem) {
    problems.push(`${sources.get('/console/tileUrl') ?? 'console.tileUrl'}: ${tileProblem}; give an http(s) URL template with {z}, {x} and {y}, e.g. https://tiles.example.city/{z}/{x}/{y}.png`);
  }
  if (Boolean(withDefaults.tls.certFile) !== Boolean(withDefaults.tls.keyFile)) {
    problems.push('ELDERGATE_TLS_CERT_FILE and ELDERGATE_TLS_KEY_FILE: set both, or neither');
  }
  problems.push(...resolveChannelSecrets(withDefaults, env));
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(withDefaults);
}

function mergeDeep(target: Record<string, unknown>, src: Record<string, unknown>) {
  for (const [k, v] of Object.entries(src)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      if (typeof target[k] !== 'object' || target[k] === null || Array.isArray(target[k])) target[k] = {};
      mergeDeep(target[k] as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      target[k] = v;
    }
  }
}

/**
 * Fill each channel's `secret` from its `secretEnv` (so the key need not sit in the config file) and check that
 * every broadcast channel exists. Returns the problems, never the secrets.
 */
function resolveChannelSecrets(config: Config, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const channels = config.notifiers?.channels;
  if (!channels || typeof channels !== 'object') return problems;
  for (const [name, ch] of Object.entries(channels)) {
    if (!ch || typeof ch !== 'object' || !ch.secretEnv) continue;
    const where = `notifiers.channels.${name}.secretEnv`;
    if (ch.secret) problems.push(`${where}: give secret or secretEnv, not both`);
    else if (!env[ch.secretEnv]) problems.push(`${where}: the environment variable ${ch.secretEnv} is not set; set it to the channel's HMAC key (16 characters or more)`);
    else if (env[ch.secretEnv]!.length < 16) problems.push(`${where}: the key in ${ch.secretEnv} is shorter than 16 characters`);
    else ch.secret = env[ch.secretEnv]!;
  }
  for (const name of config.notifiers?.broadcast ?? []) {
    if (!Object.hasOwn(channels, name)) {
      problems.push(`notifiers.broadcast: "${name}" is not a channel; define it in notifiers.channels (configured: ${Object.keys(channels).join(', ') || 'none'})`);
    }
  }
  return problems;
}

/** Variables the code reads that are not settings: the config file's path and the simulator's (firmware-sim/cli). */
const OTHER_VARIABLES = ['ELDERGATE_CONFIG'];
const OTHER_PREFIXES = ['ELDERGATE_SIM_'];

/** An `ELDERGATE_*` variable that is no setting is a typo that would otherwise be silently ignored. */
function unknownVariables(env: NodeJS.ProcessEnv, settingNames: string[]): string[] {
  const known = new Set([...settingNames, ...OTHER_VARIABLES]);
  const problems: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('ELDERGATE_') || known.has(name) || OTHER_PREFIXES.some((p) => name.startsWith(p))) continue;
    problems.push(`${name}: not a setting${didYouMean(name, [...known])}; remove it or check its spelling`);
  }
  return problems;
}

/** Keys of the file (or overrides) that the schema does not know, at every level of nesting. Removes them. */
function unknownKeys(input: unknown, schema: TSchema, path: string[]): string[] {
  if (schema[Kind] !== 'Object' || !input || typeof input !== 'object' || Array.isArray(input)) return [];
  const props = (schema as TObject).properties;
  const problems: string[] = [];
  const node = input as Record<string, unknown>;
  for (const key of Object.keys(node)) {
    if (Object.hasOwn(props, key)) {
      problems.push(...unknownKeys(node[key], props[key]!, [...path, key]));
      continue;
    }
    const where = [...path, key].join('.');
    const siblings = Object.keys(props).map((k) => [...path, k].join('.'));
    problems.push(`unknown setting "${where}"${didYouMean(where, siblings)}; remove it or check its spelling`);
    delete node[key];
  }
  return problems;
}

/** What a user can act on: the allowed values of an enum, "not a number" for text where a number goes. */
function describeError(schema: TSchema, value: unknown, message: string): string {
  const literals = schema[Kind] === 'Union' && (schema.anyOf as TSchema[]).every((s) => s[Kind] === 'Literal')
    ? (schema.anyOf as TSchema[]).map((s) => String(s.const))
    : null;
  if (literals) return `${JSON.stringify(value)} is not one of the allowed values: ${literals.join(', ')}`;
  const kind = schema[Kind];
  if ((kind === 'Integer' || kind === 'Number') && typeof value === 'string') return `${JSON.stringify(value)} is not a number`;
  return `${message} (got ${JSON.stringify(value)})`;
}

/** " (did you mean X?)" when a known name is within a few edits of the given one, else "". */
export function didYouMean(given: string, candidates: string[]): string {
  const g = given.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(g, c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  // at most a third of the name may differ: "mqt.prot" → "mqtt.port", but "foo" suggests nothing
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(given.length / 3)) ? ` (did you mean ${best}?)` : '';
}

/** Levenshtein distance, one row at a time (names here are short; no dependency for ten lines). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
