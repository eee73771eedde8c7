// Parse Mermaid diagrams with the real Mermaid parser; run by tests/docs/test_mermaid.py.
//
// stdin:  a JSON array of {"name": "...", "text": "<diagram source>"}
// stdout: a JSON array of {"name": "...", "ok": true, "type": "<diagram type>"}
//                      or {"name": "...", "ok": false, "error": "<parser message>"}
// Exit status 0 when every diagram was parsed (valid or not): the test decides what fails.
// Mermaid's flowchart code sanitizes labels with DOMPurify, which needs a DOM: jsdom provides one.

import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

let input = "";
for await (const chunk of process.stdin) {
  input += chunk;
}

const results = [];
for (const { name, text } of JSON.parse(input)) {
  try {
    const parsed = await mermaid.parse(text);
    results.push({ name, ok: true, type: parsed.diagramType });
  } catch (error) {
    results.push({ name, ok: false, error: String(error?.message ?? error) });
  }
}
process.stdout.write(JSON.stringify(results));
