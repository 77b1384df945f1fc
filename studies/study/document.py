"""A report as a list of blocks (headings, paragraphs, tables, lists, images), written as
Markdown (images linked beside it) and as one self-contained HTML page (images inlined),
so both say exactly the same."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figcaption { font-size: 13px; color: #555; max-width: 600px; }
img { max-width: 100%; }
"""


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Image:
    path: Path
    caption: str


Block = Heading | Paragraph | Table | Bullets | Image


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def markdown(self, folder: Path) -> str:
        """Markdown, with images linked relative to ``folder`` (where the file goes)."""
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            if isinstance(block, Heading):
                lines += [f"{'#' * block.level} {block.text}", ""]
            elif isinstance(block, Paragraph):
                lines += [block.text, ""]
            elif isinstance(block, Table):
                lines += ["| " + " | ".join(block.header) + " |",
                          "|" + "---|" * len(block.header),
                          *["| " + " | ".join(row) + " |" for row in block.rows], ""]
            elif isinstance(block, Bullets):
                lines += [*[f"- {item}" for item in block.items], ""]
            else:
                lines += [f"![{block.caption}]({block.path.relative_to(folder).as_posix()})",
                          "", f"*{block.caption}*", ""]
        return "\n".join(lines)

    def html(self) -> str:
        """One HTML page that needs no other file: images are inlined as data URIs."""
        parts = ["<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
                 f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>",
                 f"<body><h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            if isinstance(block, Heading):
                parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
            elif isinstance(block, Paragraph):
                parts.append(f"<p>{html.escape(block.text)}</p>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
                body = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>"
                               for row in block.rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                             "</table>")
            elif isinstance(block, Bullets):
                items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
                parts.append(f"<ul>{items}</ul>")
            else:
                data = base64.b64encode(block.path.read_bytes()).decode("ascii")
                parts.append(f"<figure><img src='data:image/png;base64,{data}' "
                             f"alt='{html.escape(block.caption, quote=True)}'>"
                             f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"


def _cell(text: str) -> str:
    numeric = text.replace("%", "").replace("–", "").replace(".", "").replace("-", "")
    css = " class='number'" if numeric.isdigit() else ""
    return f"<td{css}>{html.escape(text)}</td>"
