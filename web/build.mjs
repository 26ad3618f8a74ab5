// Builds the console into src/borderwatch/edge/web/static/, which the node and the centre serve.
// Everything the page loads ends up there: no CDN, no web font, no tile download at run time.
import { cp, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "borderwatch", "edge", "web", "static");

await rm(out, { recursive: true, force: true });
await mkdir(join(out, "i18n"), { recursive: true });

await esbuild.build({
  entryPoints: { app: join(here, "src", "main.js"), style: join(here, "src", "app.css") },
  outdir: out,
  bundle: true,
  minify: true,
  sourcemap: "linked",
  target: "es2020",
  format: "iife",
  loader: { ".png": "file", ".svg": "file" },
  assetNames: "assets/[name]-[hash]",
  legalComments: "linked",
  logLevel: "warning",
});

await cp(join(here, "index.html"), join(out, "index.html"));
await cp(join(here, "icon.svg"), join(out, "icon.svg"));
const languages = [];
for (const name of (await readdir(join(here, "i18n"))).sort()) {
  if (!name.endsWith(".json")) continue;
  await cp(join(here, "i18n", name), join(out, "i18n", name));
  languages.push(name.slice(0, -5));
}
await writeFile(join(out, "i18n", "index.json"), JSON.stringify(languages) + "\n");
console.log(`console built into ${out} (languages: ${languages.join(", ")})`);
