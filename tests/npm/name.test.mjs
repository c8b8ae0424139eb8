// The package's name is one we own on the registry, and every place a developer reads it names
// the package the build produces: `npm install` lines, imports and bundler settings in both
// READMEs, the declarations' header. (`hearth` on the registry is another project's package:
// following a stale line would install a stranger's code.)
//
// Needs pkg/ (scripts/build-npm.sh).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../browser/server.mjs';

const read = (file) => fs.readFileSync(path.join(ROOT, file), 'utf8');
const pkg = () => JSON.parse(read('pkg/package.json'));

/** Every package name a text tells developers to install, import or configure. */
function namesIn(text) {
  const names = [];
  for (const [, name] of text.matchAll(/npm (?:install|i) ([@\w./-]+)/g)) names.push(name);
  // Bare specifiers (not ./relative or /absolute paths) in import statements.
  for (const [, name] of text.matchAll(/\bfrom '([^'./][^']*)'/g)) names.push(name);
  for (const [, list] of text.matchAll(/exclude: \[([^\]]*)\]/g)) {
    for (const [, name] of list.matchAll(/'([^']+)'/g)) names.push(name);
  }
  return names;
}

test('the package is not named after the registry\'s other `hearth`', () => {
  assert.notEqual(pkg().name, 'hearth');
});

test('the npm README installs and imports the package the build produces', () => {
  const { name } = pkg();
  for (const file of ['crates/hearth-web/npm/README.md', 'pkg/README.md']) {
    const text = read(file);
    assert.equal(text.split('\n')[0], `# ${name}`, `${file}: its title`);
    const names = namesIn(text);
    assert.ok(names.filter((n) => n === name).length >= 3, `${file}: install, import and bundler lines`);
    assert.deepEqual(names.filter((n) => n !== name), [], `${file}: names another package`);
  }
});

test('the project README\'s install line names the package the build produces', () => {
  const { name } = pkg();
  const text = read('README.md');
  assert.ok(text.includes(`npm install ${name}\n`), 'README.md has an install line for the package');
  assert.deepEqual(namesIn(text).filter((n) => n !== name), [], 'README.md names another package');
  assert.ok(text.includes(`the npm package \`${name}\``), 'README.md says what build-npm.sh builds');
});

/** Crate names someone else holds on crates.io (checked with `cargo info NAME`). */
const TAKEN_CRATE_NAMES = ['hearth', 'hearth-cli'];

test('no crate would be published under a name someone else holds on crates.io', () => {
  for (const dir of fs.readdirSync(path.join(ROOT, 'crates'))) {
    const manifest = read(`crates/${dir}/Cargo.toml`);
    const name = manifest.match(/^name = "([^"]+)"/m)[1];
    if (TAKEN_CRATE_NAMES.includes(name)) {
      assert.match(manifest, /^publish = false$/m, `crates/${dir}: '${name}' is taken on crates.io`);
    }
  }
});

test('the declarations name the package they describe', () => {
  const { name } = pkg();
  assert.match(read('pkg/hearth.d.ts').split('\n')[0], new RegExp(`from '${name}'`));
});
