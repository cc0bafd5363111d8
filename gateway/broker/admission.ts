// Admission control for CONNECTs (issue 10, "cheaper connects"). A CONNECT in progress — parsed and waiting for its
// turn, being authenticated, its session restored, its CONNACK not yet written — holds memory and a share of every
// event-loop turn (aedes parses every CONNECT a poll phase reads, then sets them all up in the next check phase). In a reconnect
// storm thousands of them interleave, each one's latency grows with the crowd until devices time out and retry, and
// the work done for them is wasted. Beyond `limit` CONNECTs in progress, a new one is answered at once with CONNACK
// "server unavailable" (MQTT 3.1.1 return code 3) before its secret is even hashed, and counted; the device backs off
// and retries, and those already admitted finish quickly.
export class ConnectAdmission {
  private inProgress = 0;
  private readonly holding = new WeakSet<object>();

  constructor(private readonly limit: number) {}

  /**
   * A CONNECT has been parsed (it is counted from here). True: admitted, and released by `release` once its CONNACK
   * is out or the connection closed (whichever comes first; releasing twice is harmless). False: not admitted; the
   * broker answers it with return code 3 when its turn comes (`admitted` tells).
   */
  arrive(client: object): boolean {
    if (this.holding.has(client)) return true;
    if (this.inProgress >= this.limit) return false;
    this.inProgress++;
    this.holding.add(client);
    return true;
  }

  admitted(client: object): boolean {
    return this.holding.has(client);
  }

  release(client: object): void {
    if (!this.holding.delete(client)) return;
    this.inProgress--;
  }

  get size(): number {
    return this.inProgress;
  }
}
