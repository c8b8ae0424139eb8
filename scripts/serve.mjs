// Serves the demo (www/) on 127.0.0.1, with the repository's models/ folder at /models/ (the
// built-in SmolLM2 preset). Used by scripts/serve.sh.
import path from 'node:path';
import { startServer, ROOT } from '../tests/browser/server.mjs';

const port = Number(process.env.PORT ?? 8080);
const server = await startServer({ root: path.join(ROOT, 'www'), port, mounts: { '/models/': path.join(ROOT, 'models') } });
console.log(`Hearth is at ${server.url}/ (Ctrl-C stops the server)`);
