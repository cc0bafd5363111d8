// Files that live in the checkout beside the code (migrations, register maps, package.json) are found from the
// module's own location. Compiled to dist/ (`npm start`), a module sits one folder deeper than its source; the
// files were not copied there, so the path is taken back into the source tree.
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder of the module at `metaUrl` as it is in the source tree (its dist/ build maps back to the source). */
export function sourceDir(metaUrl: string): string {
  const here = dirname(fileURLToPath(metaUrl));
  const marker = `${sep}dist${sep}`;
  const at = (here + sep).lastIndexOf(marker);
  return at < 0 ? here : join(here.slice(0, at), here.slice(at + marker.length));
}
