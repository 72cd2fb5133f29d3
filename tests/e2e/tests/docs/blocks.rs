//! The shell blocks of a Markdown document, and what running one as a test adds to it.
//!
//! A block is a fence opened by ```` ```sh ```` or ```` ```bash ````. One that must not run says so
//! on the line right above its fence, with the reason:
//! `<!-- docs-test: not run, because it stops the lattice the other examples use -->`.
//!
//! A line that calls the documents' `call` helper (it prints the body and ` -> <status>`) and
//! ends in a comment naming a status (`-> 401`) is checked: the status must be that one, and
//! every `"field":value` the comment quotes must be in the body.

/// One block of a document.
#[derive(Debug, PartialEq, Eq)]
pub struct Block {
    /// The line of its opening fence, from 1.
    pub line: usize,
    pub code: String,
    /// Why it is not run; `None` for a block that runs.
    pub not_run: Option<String>,
}

const MARKER: &str = "<!-- docs-test: not run, because ";

/// The shell blocks of `markdown`, in order, or why the document's markers are wrong.
pub fn shell_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let fence = lines[index].trim_end();
        let Some(language) = fence.strip_prefix("```") else {
            index += 1;
            continue;
        };
        let start = index;
        index += 1;
        let mut code = String::new();
        while index < lines.len() && !lines[index].starts_with("```") {
            code.push_str(lines[index]);
            code.push('\n');
            index += 1;
        }
        index += 1;
        let above = start.checked_sub(1).map(|i| lines[i].trim());
        let not_run = match above {
            Some(marker) if marker.starts_with("<!-- docs-test") => {
                let reason = marker
                    .strip_prefix(MARKER)
                    .and_then(|rest| rest.strip_suffix("-->"))
                    .map(str::trim)
                    .filter(|reason| !reason.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "line {start}: a block that is not run says why: `{MARKER}<reason> -->`"
                        )
                    })?;
                Some(reason.to_string())
            }
            _ => None,
        };
        if matches!(language, "sh" | "bash") {
            blocks.push(Block {
                line: start + 1,
                code,
                not_run,
            });
        } else if not_run.is_some() {
            return Err(format!(
                "line {start}: only shell blocks run, so only they are marked"
            ));
        }
    }
    Ok(blocks)
}

/// `code` with each `call` line that names its status in a comment turned into a check of that
/// status and of the fields the comment quotes.
pub fn with_checks(code: &str) -> String {
    code.lines()
        .map(|line| match checked_call(line) {
            Some(checked) => checked,
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn checked_call(line: &str) -> Option<String> {
    let indent = &line[..line.len() - line.trim_start().len()];
    let rest = line.trim_start().strip_prefix("call ")?;
    let (arguments, comment) = rest.split_once(" #")?;
    let status = comment
        .split("-> ")
        .nth(1)?
        .get(..3)
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))?;
    let fields: Vec<String> = quoted_fields(comment)
        .into_iter()
        .map(|field| format!("'{field}'"))
        .collect();
    Some(format!(
        "{indent}docs_expect {status} {} -- {}",
        fields.join(" "),
        arguments.trim_end()
    ))
}

/// The `"name":value` pieces of a comment (a string, a number, true, false or null).
fn quoted_fields(comment: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut rest = comment;
    while let Some(open) = rest.find('"') {
        let candidate = &rest[open..];
        let field = (|| {
            let name_end = candidate[1..].find('"')? + 1;
            let name = &candidate[1..name_end];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return None;
            }
            let value = candidate[name_end + 1..].strip_prefix(':')?;
            let value_len = if let Some(string) = value.strip_prefix('"') {
                string.find('"')? + 2
            } else {
                value
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .unwrap_or(value.len())
            };
            (value_len > 0).then(|| &candidate[..name_end + 2 + value_len])
        })();
        match field {
            Some(field) => {
                fields.push(field);
                rest = &candidate[field.len()..];
            }
            None => rest = &candidate[1..],
        }
    }
    fields
}

/// The shell function that the checked lines call (after the documents' own `call`).
pub const EXPECT_FUNCTION: &str = r#"docs_expect() {
  local want=$1 fragments=() out
  shift
  while [[ $1 != -- ]]; do fragments+=("$1"); shift; done
  shift
  out=$(call "$@")
  echo "$out"
  [[ $out == *" -> $want" ]] || { echo "docs test: expected status $want from: call $*" >&2; return 1; }
  for fragment in "${fragments[@]}"; do
    [[ $out == *"$fragment"* ]] || { echo "docs test: expected $fragment from: call $*" >&2; return 1; }
  done
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_blocks_are_found_in_order_with_their_lines() {
        let markdown = "text\n```sh\necho one\n```\n```json\n{}\n```\n```bash\necho two\n```\n";
        let blocks = shell_blocks(markdown).unwrap();
        assert_eq!(
            blocks,
            [
                Block {
                    line: 2,
                    code: "echo one\n".into(),
                    not_run: None
                },
                Block {
                    line: 8,
                    code: "echo two\n".into(),
                    not_run: None
                },
            ]
        );
    }

    #[test]
    fn a_block_that_is_not_run_says_why_or_the_document_is_refused() {
        let marked =
            "<!-- docs-test: not run, because it stops the lattice -->\n```sh\nmake down\n```\n";
        assert_eq!(
            shell_blocks(marked).unwrap()[0].not_run.as_deref(),
            Some("it stops the lattice")
        );
        let no_reason = "<!-- docs-test: not run -->\n```sh\nmake down\n```\n";
        assert!(shell_blocks(no_reason).is_err());
        let empty_reason = "<!-- docs-test: not run, because  -->\n```sh\nmake down\n```\n";
        assert!(shell_blocks(empty_reason).is_err());
    }

    #[test]
    fn a_call_that_names_its_status_is_checked_with_the_fields_its_comment_quotes() {
        let code = r##"call "$API/Balance?user=$NAME" -H "$AUTH"   # "balance":90 -> 200
call -X POST $API/Order -d '{}'   # "error":"invalid_sum","status":false -> 422, nothing stored
call "$API/List" -H "$AUTH"   # two notifications
echo "# -> 500"
"##;
        assert_eq!(
            with_checks(code),
            r##"docs_expect 200 '"balance":90' -- "$API/Balance?user=$NAME" -H "$AUTH"
docs_expect 422 '"error":"invalid_sum"' '"status":false' -- -X POST $API/Order -d '{}'
call "$API/List" -H "$AUTH"   # two notifications
echo "# -> 500"
"##
        );
    }
}
