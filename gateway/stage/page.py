"""The preview page's HTML skeleton and stylesheet (``string.Template``: $name placeholders).

Everything substituted in is escaped by ``stage/preview.py`` before it gets here, except the
description, which ``readme_renderer`` has already sanitized. No script anywhere: the page
works as plain HTML, and its Content-Security-Policy forbids scripts outright.
"""

from __future__ import annotations

from string import Template

__all__ = ["PAGE", "SECURITY_HEADERS"]

# The page is reached through a capability URL: nothing on it may leak that URL to another
# site (Referer), run code, or be framed by another origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}

_STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
  --accent: #0b5cad; --warn-bg: #fff8c5; --warn-line: #d4a72c; --bad: #b42318; --good: #1a7f37; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #fff; }
a { color: var(--accent); }
code, pre, .hash { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.875rem; }
.banner { margin: 0; background: var(--warn-bg); border-bottom: 1px solid var(--warn-line);
  padding: 0.5rem 1rem; text-align: center; font-size: 0.9rem; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
.hero { border-bottom: 1px solid var(--line); padding-bottom: 0.75rem; }
.hero h1 { margin: 0.25rem 0; font-size: 1.9rem; overflow-wrap: anywhere; }
.hero .version { color: var(--muted); font-weight: 400; }
.summary { margin: 0.25rem 0 0; font-size: 1.1rem; color: var(--muted); }
h2 { font-size: 1.25rem; border-bottom: 1px solid var(--line); padding-bottom: 0.25rem; }
pre.command { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: 0.5rem 0.75rem; white-space: pre-wrap; word-break: break-all; margin: 0.25rem 0; }
.warning { background: var(--warn-bg); border: 1px solid var(--warn-line); border-radius: 6px;
  padding: 0.75rem 1rem; margin: 1rem 0; overflow-wrap: anywhere; }
.warning h2 { border: 0; margin: 0 0 0.25rem; font-size: 1.05rem; }
.layout { display: grid; grid-template-columns: minmax(0, 1fr); gap: 1.5rem; }
@media (min-width: 56rem) { .layout { grid-template-columns: minmax(0, 1fr) 19rem; } }
.description { min-width: 0; overflow-wrap: anywhere; }
.description img { max-width: 100%; height: auto; }
.description pre { background: var(--soft); padding: 0.75rem; overflow-x: auto;
  border-radius: 6px; }
.description table { border-collapse: collapse; display: block; overflow-x: auto; }
.description td, .description th { border: 1px solid var(--line); padding: 0.25rem 0.5rem; }
aside dl { margin: 0; }
aside dt { font-weight: 600; margin-top: 0.75rem; }
aside dd { margin: 0.1rem 0 0; overflow-wrap: anywhere; }
aside ul { margin: 0; padding-left: 1.1rem; }
.muted { color: var(--muted); }
.table-wrap { overflow-x: auto; }
table.files { border-collapse: collapse; width: 100%; }
table.files th, table.files td { text-align: left; vertical-align: top; padding: 0.4rem 0.5rem;
  border-bottom: 1px solid var(--line); }
table.files td { overflow-wrap: anywhere; }
.hash { word-break: break-all; min-width: 12rem; }
.added { color: var(--good); }
.removed, .refused { color: var(--bad); }
@media (max-width: 40rem) {
  table.files thead { display: none; }
  table.files tr { display: block; border-bottom: 1px solid var(--line); padding: 0.5rem 0; }
  table.files td { display: block; border: 0; padding: 0.1rem 0; }
  table.files td::before { content: attr(data-label) ": "; font-weight: 600; }
  .hash { min-width: 0; }
}
"""

PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>$project $version · staged preview</title>
<style>"""
    + _STYLE
    + """</style>
</head>
<body>
<p class="banner" id="banner">Staged preview, not published: this page goes away when the
release is published or canceled, or when the stage expires ($expires).</p>
<main>
<section class="hero">
<h1 id="project">$project <span class="version" id="version">$version</span></h1>
<p class="summary" id="summary">$summary</p>
</section>
$warnings
<section id="install">
<h2>Install this stage</h2>
<pre class="command"><code id="pip-install">$pip</code></pre>
<pre class="command"><code id="uv-install">$uv</code></pre>
<p class="muted">Dependencies come from your usual index; only this release comes from the
stage. <a href="$simple_url">Simple index of the stage</a>.</p>
</section>
<div class="layout">
<article class="description" id="description">
<h2>Project description</h2>
$description
</article>
<aside id="metadata">
<h2>Meta</h2>
<dl>
$metadata
</dl>
</aside>
</div>
<section id="files">
<h2>Files</h2>
$files
</section>
<section id="comparison">
$comparison
</section>
</main>
</body>
</html>
"""
)
