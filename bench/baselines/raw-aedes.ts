// The raw broker the figures compare against: aedes with no hooks at all (no authentication, no validation, no
// storage), `noDelay` on every socket, in its own process. It counts the publishes it takes from clients.
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { serve } from '../lib/ipc.js';

let server: Server | null = null;
let aedes: Aedes | null = null;
let published = 0;

serve({
  async start(a: { port?: number; host?: string }) {
    aedes = await Aedes.createBroker({});
    aedes.on('publish', (_packet, client) => {
      if (client) published++;
    });
    server = createServer({ noDelay: true }, (socket) => {
      // Nagle's algorithm alone adds ~40 ms to p99 (docs/design.md §7)
      socket.setNoDelay(true);
      aedes!.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(a.port ?? 0, a.host ?? '127.0.0.1', () => resolve());
    });
    return { port: (server.address() as { port: number }).port };
  },
  count() {
    return { ingested: published, connected: aedes?.connectedClients ?? 0 };
  },
  async close() {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await new Promise<void>((r) => (aedes ? aedes.close(() => r()) : r()));
    return null;
  },
});
