package console

// stylesheet is the console's only style: readable, high contrast, large
// targets, a visible focus ring for keyboard use.
const stylesheet = `
:root{--ink:#1f2933;--muted:#52606d;--line:#d9e2ec;--bg:#f8fafc;--accent:#0b5cad;--warn:#9b1c1c;--ok:#046c4e}
*{box-sizing:border-box}body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#fff}
a{color:var(--accent)}a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #f7b500;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1em;top:1em;background:#fff;padding:.5em;z-index:9}
header{display:flex;gap:1.5em;align-items:center;padding:.7em 1.5em;background:#102a43;color:#fff;flex-wrap:wrap}
header a{color:#fff;text-decoration:none;font-weight:600}header a[aria-current=page]{border-bottom:3px solid #f7b500}
header .me{margin-left:auto;font-size:.9em;color:#d9e2ec}header form{display:inline}
main{padding:1.2em 1.5em;max-width:1400px}h1{font-size:1.5em;margin:.2em 0 .6em}h2{font-size:1.2em;margin:1.4em 0 .4em}
.intro{color:var(--muted);margin:.2em 0 .8em}.flash{background:#e3f9e5;border:1px solid #31c48d;padding:.6em 1em;border-radius:6px}
.error{background:#fde8e8;border:1px solid #f98080;padding:.6em 1em;border-radius:6px}
table{border-collapse:collapse;width:100%;margin:.4em 0 1em}th,td{text-align:left;padding:.45em .6em;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600;font-size:.92em}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tfoot td{font-weight:700;border-top:2px solid var(--ink)}
.badge{display:inline-block;padding:.05em .5em;border-radius:4px;font-size:.85em;background:#e1effe;color:#1e429f}.badge.warn{background:#fde8e8;color:var(--warn)}
form.inline{display:inline-flex;gap:.4em;align-items:center;flex-wrap:wrap;margin:.15em 0}
label{font-size:.9em;color:var(--muted)}input,select,textarea{font:inherit;padding:.3em .45em;border:1px solid #9aa5b1;border-radius:4px}
button{font:inherit;padding:.35em .9em;border-radius:4px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}button.danger{background:var(--warn);border-color:var(--warn)}
fieldset{border:1px solid var(--line);border-radius:6px;padding:.6em 1em;margin:.6em 0}legend{font-weight:600}
.filters{display:flex;gap:.8em;flex-wrap:wrap;align-items:flex-end}.filters div{display:flex;flex-direction:column}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1em}.card{border:1px solid var(--line);border-radius:8px;padding:.8em 1em}
iframe{width:100%;height:38em;border:1px solid var(--line);border-radius:6px;background:#fff}pre{white-space:pre-wrap;background:var(--bg);padding:1em;border-radius:6px}
svg text{font:12px system-ui,sans-serif;fill:var(--ink)}svg .bar{fill:#0b5cad}svg .late{fill:#c81e1e}svg .axis{stroke:#9aa5b1}
.cal{display:grid;grid-template-columns:repeat(7,1fr);gap:.4em}.cal div{border:1px solid var(--line);border-radius:6px;padding:.4em;min-height:5em;font-size:.9em}
.cal .we{background:var(--bg);color:var(--muted)}.cal strong{display:block}
.login{max-width:30em;margin:4em auto}.login input{width:100%}
`
