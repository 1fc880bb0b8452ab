// The peer of bench:attachments: a bare Node HTTP server. PUT /<name> streams the body to a file
// (fsynced once at the end, as a careful file server would), GET /<name> streams it back.
// Prints its port on stdout.
import { createServer } from 'node:http';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: bare-server.ts <dir>');

const server = createServer((req, res) => {
  const name = (req.url ?? '/').slice(1).replace(/[^a-z0-9]/gi, '');
  const path = join(dir, name || 'blob');
  const fail = () => {
    res.statusCode = 500;
    res.end();
  };
  if (req.method === 'PUT') {
    pipeline(req, createWriteStream(path))
      .then(async () => {
        const f = await open(path, 'r+');
        await f.datasync();
        await f.close();
        res.statusCode = 204;
        res.end();
      })
      .catch(fail);
  } else if (req.method === 'GET') {
    stat(path)
      .then((s) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(s.size) });
        return pipeline(createReadStream(path, { highWaterMark: 256 * 1024 }), res);
      })
      .catch(fail);
  } else fail();
});
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(`port ${typeof a === 'object' && a !== null ? a.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
