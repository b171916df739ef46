//! The words of a backed-up item, for the full-text index: a message's text body and attachment
//! names, an Office document's text, a plain-text file. Best effort and bounded: an item that
//! does not parse is indexed by its catalog fields only, never an error.

use std::io::{Cursor, Read};

use mail_parser::MimeHeaders;

/// Text kept per item; enough for any message and most documents, and the index stays small.
pub const MAX_TEXT: usize = 256 * 1024;
/// Items larger than this are indexed by their catalog fields only.
pub const MAX_READ: u64 = 8 * 1024 * 1024;

/// Whether an item at `path` has words worth reading out of the repository.
pub fn has_text(path: &str) -> bool {
    matches!(
        extension(path).as_str(),
        "eml"
            | "json"
            | "txt"
            | "md"
            | "csv"
            | "html"
            | "htm"
            | "ics"
            | "vcf"
            | "docx"
            | "pptx"
            | "xlsx"
    )
}

fn extension(path: &str) -> String {
    path.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The words of one item's bytes, at most `MAX_TEXT` bytes of them.
pub fn extract(path: &str, bytes: &[u8]) -> String {
    let mut text = match extension(path).as_str() {
        "eml" => message_text(bytes),
        "html" | "htm" => strip_markup(&String::from_utf8_lossy(bytes)),
        "docx" => office_text(bytes, |name| name == "word/document.xml"),
        "pptx" => office_text(bytes, |name| {
            name.starts_with("ppt/slides/slide") && name.ends_with(".xml")
        }),
        "xlsx" => office_text(bytes, |name| name == "xl/sharedStrings.xml"),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    };
    truncate(&mut text, MAX_TEXT);
    text
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// A message's text body (the HTML body's text when it has no plain one) and its attachments'
/// names.
fn message_text(bytes: &[u8]) -> String {
    let Some(message) = mail_parser::MessageParser::default().parse(bytes) else {
        return String::new();
    };
    let mut text = String::new();
    if let Some(body) = message.body_text(0) {
        text.push_str(&body);
    } else if let Some(html) = message.body_html(0) {
        text.push_str(&strip_markup(&html));
    }
    for attachment in message.attachments() {
        if let Some(name) = attachment.attachment_name() {
            text.push('\n');
            text.push_str(name);
        }
    }
    text
}

/// The text of the XML parts of an Office Open XML package whose names `wanted` accepts.
fn office_text(bytes: &[u8], wanted: impl Fn(&str) -> bool) -> String {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return String::new();
    };
    let mut text = String::new();
    for i in 0..zip.len() {
        let Ok(mut part) = zip.by_index(i) else {
            continue;
        };
        if !wanted(part.name()) {
            continue;
        }
        let mut xml = String::new();
        // A part is bounded by the item's size limit; a broken one is skipped.
        if part
            .by_ref()
            .take(MAX_READ)
            .read_to_string(&mut xml)
            .is_ok()
        {
            text.push_str(&strip_markup(&xml));
            text.push('\n');
        }
        if text.len() > MAX_TEXT {
            break;
        }
    }
    text
}

/// Text between tags, with tags turned into spaces (so words of adjacent cells stay apart),
/// `script`/`style` contents dropped and the common entities decoded.
pub fn strip_markup(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len() / 2);
    let mut rest = markup;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let after = &rest[open..];
        let lower: String = after
            .chars()
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let skip_to = if lower.starts_with("<script") {
            after.to_ascii_lowercase().find("</script").map(|i| i + 8)
        } else if lower.starts_with("<style") {
            after.to_ascii_lowercase().find("</style").map(|i| i + 7)
        } else {
            Some(0)
        };
        let from = skip_to.unwrap_or(after.len());
        match after[from..].find('>') {
            Some(close) => rest = &after[from + close + 1..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    decode_entities(&out)
}

fn decode_entities(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_gives_its_body_and_attachment_names() {
        let eml = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Budget\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\n\
Content-Type: text/plain\r\n\r\nThe quarterly numbers are attached.\r\n--x\r\n\
Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"q3-forecast.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--x--\r\n";
        let text = extract("Inbox/AAMk1.eml", eml);
        assert!(text.contains("quarterly numbers"), "{text}");
        assert!(text.contains("q3-forecast.pdf"), "{text}");
    }

    #[test]
    fn markup_loses_tags_scripts_and_entities() {
        let text = strip_markup(
            "<p>Fish&amp;chips</p><script>var secret = 1;</script><td>left</td><td>right</td>",
        );
        assert!(text.contains("Fish&chips"));
        assert!(!text.contains("secret"));
        assert!(text.contains("left") && text.contains("right") && !text.contains("leftright"));
    }

    #[test]
    fn a_word_document_gives_its_text() {
        let mut buffer = Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            zip.start_file(
                "word/document.xml",
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            std::io::Write::write_all(
                &mut zip,
                b"<w:document><w:body><w:p><w:r><w:t>Merger</w:t></w:r><w:r><w:t>plan</w:t></w:r></w:p></w:body></w:document>",
            )
            .unwrap();
            zip.finish().unwrap();
        }
        let text = extract("Documents/Plan.DOCX", buffer.get_ref());
        assert!(text.contains("Merger") && text.contains("plan"), "{text}");
        assert_eq!(extract("broken.docx", b"not a zip"), "");
    }

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        assert!(extract("notes.txt", long.as_bytes()).len() <= MAX_TEXT);
    }
}
