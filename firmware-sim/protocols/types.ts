// A simulated terminal that speaks one of the gateway's native protocols (watch, JT/T 808, SIA DC-09) instead of
// MQTT. firmware-sim is an outside client: these speak the wire protocol from their own encoders, never the gateway's.
export const PROTOCOL_SIM_KINDS = ['watch', 'jt808', 'dc09'] as const;
export type ProtocolSimKind = (typeof PROTOCOL_SIM_KINDS)[number];

/** What the terminal received from the gateway, decoded (an acknowledge, a call-back request, a locate request, …). */
export interface ReceivedCommand {
  /** acknowledge-alarm | call-back | locate-now | set-contacts | send-text | other */
  type: string;
  params: Record<string, unknown>;
  /** the raw frame, printable */
  raw: string;
  /** epoch ms */
  at: number;
}

export interface ProtocolSimOptions {
  host: string;
  port: number;
  /** watch id / IMEI, JT/T 808 phone number, DC-09 account: the serial the device was provisioned with */
  identifier: string;
  /** JT/T 808 only: the authentication code, when the terminal already has one (otherwise it registers first) */
  authCode?: string;
  /** DC-09 only: the account's AES key (hex) when the line is encrypted */
  key?: string;
  /** DC-09: 'tcp' (default) or 'udp' */
  transport?: 'tcp' | 'udp';
  /** how long to wait for an acknowledgement before sending again (ms) */
  ackTimeoutMs?: number;
}

export interface ProtocolSimTerminal {
  readonly kind: ProtocolSimKind;
  readonly identifier: string;
  /** connect (and register / authenticate where the protocol needs it); resolves once the gateway accepted the terminal */
  connect(): Promise<void>;
  /**
   * Raise an SOS (watch AL with the SOS bit, JT/T 808 0x0200 with alarm bit 0, DC-09 ADM-CID 1101 / SIA-DCS PA) and
   * resolve with the epoch ms at which the gateway's protocol acknowledgement arrived (resent until it does).
   */
  sos(position?: { lat: number; lon: number }): Promise<number>;
  /** a fall where the protocol has one (watch AL fall bit, JT/T 808 rollover/collision bit, DC-09 1102/vendor code) */
  fall?(position?: { lat: number; lon: number }): Promise<number>;
  /** a position report (watch UD, JT/T 808 0x0200 without alarm); DC-09 has none */
  position?(lat: number, lon: number): Promise<number>;
  /** keepalive / heartbeat / NULL poll, acknowledged */
  heartbeat(): Promise<number>;
  /** every command the gateway sent, in order */
  readonly received: ReceivedCommand[];
  onCommand(listener: (cmd: ReceivedCommand) => void): void;
  /** drop the link abruptly (socket destroyed, no goodbye): supervision should notice */
  drop(): void;
  /** close politely */
  close(): Promise<void>;
}
