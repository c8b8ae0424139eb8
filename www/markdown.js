// A small Markdown renderer for model output that builds DOM nodes, never HTML strings:
// whatever the model writes (`<img src=x onerror=…>`, `<script>`) ends up as text.
// Covers what chat models produce: fenced code blocks, inline code, bold, italic, headings,
// bullet and numbered lists, links (http/https only), paragraphs.

function inline(text, parent) {
  // Tokens: `code`, **bold**, *italic* / _italic_, [label](http…)
  const pattern = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\n]+\*|\b_[^_\n]+_\b)|(\[[^\]\n]+\]\((https?:\/\/[^)\s]+)\))/g;
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    let node;
    if (m[1]) {
      node = document.createElement('code');
      node.textContent = m[1].slice(1, -1);
    } else if (m[2]) {
      node = document.createElement('strong');
      inline(m[2].slice(2, -2), node);
    } else if (m[3]) {
      node = document.createElement('em');
      inline(m[3].slice(1, -1), node);
    } else {
      node = document.createElement('a');
      node.href = m[5];
      node.rel = 'noopener noreferrer nofollow';
      node.target = '_blank';
      node.textContent = m[4].slice(1, m[4].indexOf(']'));
    }
    parent.append(node);
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

/** Renders `source` into `target`, replacing its content. */
export function renderMarkdown(source, target) {
  const out = document.createDocumentFragment();
  const lines = source.split('\n');
  let paragraph = [];
  let list = null;
  const flushParagraph = () => {
    if (!paragraph.length) return;
    const p = document.createElement('p');
    paragraph.forEach((line, i) => {
      if (i) p.append(document.createElement('br'));
      inline(line, p);
    });
    out.append(p);
    paragraph = [];
  };
  const flushList = () => { list = null; };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*```\s*([\w+-]*)/.exec(line);
    if (fence) {
      flushParagraph(); flushList();
      const code = [];
      i += 1;
      while (i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i++]);
      const pre = document.createElement('pre');
      const el = document.createElement('code');
      if (fence[1]) el.dataset.lang = fence[1];
      el.textContent = code.join('\n');
      pre.append(el);
      out.append(pre);
      continue;
    }
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    if (heading) {
      flushParagraph(); flushList();
      const h = document.createElement(`h${Math.min(heading[1].length + 2, 6)}`);
      inline(heading[2], h);
      out.append(h);
      continue;
    }
    const item = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/.exec(line);
    if (item) {
      flushParagraph();
      const tag = item[1] ? 'ul' : 'ol';
      if (!list || list.tagName.toLowerCase() !== tag) {
        list = document.createElement(tag);
        out.append(list);
      }
      const li = document.createElement('li');
      inline(item[3], li);
      list.append(li);
      continue;
    }
    if (!line.trim()) { flushParagraph(); flushList(); continue; }
    flushList();
    paragraph.push(line);
  }
  flushParagraph();
  target.replaceChildren(out);
}
