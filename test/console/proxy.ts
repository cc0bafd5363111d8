// A TCP proxy in front of the gateway whose link can be cut and restored: the operator's network dropping, with
// real sockets (the browser sees refused and reset connections, exactly as on a real drop).
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface Proxy {
  port: number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const make = (): Server => createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  let server = make();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const stop = () => new Promise<void>((r) => {
    server.close(() => r());
    for (const s of sockets) s.destroy();
  });
  return {
    port,
    cut: stop,
    async restore() {
      server = make();
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    },
    close: stop,
  };
}
