//! The slice of XML-RPC that OpenMage's `/api/xmlrpc/` needs: encoding a
//! `methodCall` and decoding a `methodResponse` (value or fault).
//!
//! Encoding is done by hand because the format is tiny; decoding goes
//! through `quick-xml`, which only knows the five predefined entities and
//! character references, so a hostile response cannot expand anything.
//! A `<!DOCTYPE>` is refused outright: no XML-RPC server sends one.

use std::fmt::Write;

use quick_xml::events::Event;
use quick_xml::Reader;
use thiserror::Error;

/// An XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Nil,
    Array(Vec<Value>),
    Struct(Vec<(String, Value)>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
}

/// A decoded `methodResponse`.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Value(Value),
    Fault { code: i64, message: String },
}

/// The response was not well-formed XML-RPC.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("malformed XML-RPC response: {0}")]
pub struct DecodeError(String);

fn bad(what: impl Into<String>) -> DecodeError {
    DecodeError(what.into())
}

// ------------------------------------------------------------------ encoding

/// Encodes a `methodCall` document.
pub fn method_call(method: &str, params: &[Value]) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodCall><methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName><params>");
    for p in params {
        out.push_str("<param>");
        write_value(&mut out, p);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

fn write_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    match v {
        Value::String(s) => {
            out.push_str("<string>");
            escape_into(out, s);
            out.push_str("</string>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::Int(i) => {
            let _ = write!(out, "<int>{i}</int>");
        }
        Value::Double(d) => {
            let _ = write!(out, "<double>{d}</double>");
        }
        Value::Nil => out.push_str("<nil/>"),
        Value::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>");
            for (name, value) in members {
                out.push_str("<member><name>");
                escape_into(out, name);
                out.push_str("</name>");
                write_value(out, value);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// Escapes text content. Besides the markup characters, `\r` becomes a
/// character reference (a parser would otherwise normalise it to `\n`) and
/// control characters XML 1.0 forbids become U+FFFD, since a single one
/// would make the server reject the whole document.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

// ------------------------------------------------------------------ decoding

/// Deeper than any sane response; bounds the recursion below.
const MAX_DEPTH: usize = 64;

/// A parsed element: its name, element children and concatenated text.
#[derive(Debug, Default)]
struct Node {
    name: String,
    children: Vec<Node>,
    text: String,
}

impl Node {
    fn child(&self, name: &str) -> Result<&Node, DecodeError> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| bad(format!("<{}> has no <{name}>", self.name)))
    }

    /// The single element child, for `<value>` and `<param>`.
    fn only_child(&self) -> Result<Option<&Node>, DecodeError> {
        match self.children.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(bad(format!("<{}> has more than one child", self.name))),
        }
    }
}

/// Decodes a `methodResponse` document.
pub fn parse_response(xml: &str) -> Result<Response, DecodeError> {
    let root = parse_tree(xml)?;
    if root.name != "methodResponse" {
        return Err(bad(format!("root element is <{}>", root.name)));
    }
    match root.only_child()? {
        Some(n) if n.name == "params" => {
            let param = n.child("param")?;
            Ok(Response::Value(decode_value(param.child("value")?)?))
        }
        Some(n) if n.name == "fault" => decode_fault(n.child("value")?),
        _ => Err(bad("<methodResponse> holds neither <params> nor <fault>")),
    }
}

fn decode_fault(value: &Node) -> Result<Response, DecodeError> {
    let Value::Struct(members) = decode_value(value)? else {
        return Err(bad("fault is not a struct"));
    };
    let member = |name: &str| members.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let code = match member("faultCode") {
        Some(Value::Int(i)) => *i,
        // Some servers send the code as a string; accept it if it is numeric.
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| bad("faultCode is not a number"))?,
        _ => return Err(bad("fault has no integer faultCode")),
    };
    let message = match member("faultString") {
        Some(Value::String(s)) => s.clone(),
        None => String::new(),
        Some(_) => return Err(bad("faultString is not a string")),
    };
    Ok(Response::Fault { code, message })
}

fn decode_value(node: &Node) -> Result<Value, DecodeError> {
    // An untyped `<value>text</value>` is a string (XML-RPC spec).
    let Some(typed) = node.only_child()? else {
        return Ok(Value::String(node.text.clone()));
    };
    let scalar = typed.text.trim();
    Ok(match typed.name.as_str() {
        // Base64 and dates are kept as their text: the order API never sends them.
        "string" | "base64" | "dateTime.iso8601" => Value::String(typed.text.clone()),
        "boolean" => match scalar {
            "1" | "true" => Value::Bool(true),
            "0" | "false" => Value::Bool(false),
            other => return Err(bad(format!("boolean {other:?}"))),
        },
        "int" | "i4" | "i8" => Value::Int(
            scalar
                .parse()
                .map_err(|_| bad(format!("integer {scalar:?}")))?,
        ),
        "double" => Value::Double(
            scalar
                .parse()
                .map_err(|_| bad(format!("double {scalar:?}")))?,
        ),
        "nil" => Value::Nil,
        "array" => Value::Array(
            typed
                .child("data")?
                .children
                .iter()
                .map(|v| match v.name.as_str() {
                    "value" => decode_value(v),
                    other => Err(bad(format!("<{other}> in <data>"))),
                })
                .collect::<Result<_, _>>()?,
        ),
        "struct" => Value::Struct(
            typed
                .children
                .iter()
                .map(|m| {
                    Ok((
                        m.child("name")?.text.clone(),
                        decode_value(m.child("value")?)?,
                    ))
                })
                .collect::<Result<_, DecodeError>>()?,
        ),
        other => return Err(bad(format!("unknown type <{other}>"))),
    })
}

/// Reads the document into a tree of elements.
fn parse_tree(xml: &str) -> Result<Node, DecodeError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    loop {
        let event = reader.read_event().map_err(|e| bad(e.to_string()))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(bad("nested too deeply"));
                }
                stack.push(Node {
                    name: element_name(start.name().as_ref())?,
                    ..Node::default()
                });
            }
            Event::Empty(start) => {
                let node = Node {
                    name: element_name(start.name().as_ref())?,
                    ..Node::default()
                };
                attach(&mut stack, &mut root, node)?;
            }
            Event::End(_) => {
                let node = stack.pop().ok_or_else(|| bad("unbalanced end tag"))?;
                attach(&mut stack, &mut root, node)?;
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(|e| bad(e.to_string()))?;
                append_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let text = data.decode().map_err(|e| bad(e.to_string()))?;
                append_text(&mut stack, &text)?;
            }
            Event::DocType(_) => return Err(bad("DOCTYPE is not allowed")),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(bad("document ends inside an element"));
    }
    root.ok_or_else(|| bad("empty document"))
}

fn element_name(raw: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| bad("element name is not UTF-8"))
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) -> Result<(), DecodeError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => return Err(bad("more than one root element")),
    }
    Ok(())
}

fn append_text(stack: &mut [Node], text: &str) -> Result<(), DecodeError> {
    match stack.last_mut() {
        Some(node) => node.text.push_str(text),
        // Whitespace around the root element is fine; anything else is not.
        None if text.trim().is_empty() => {}
        None => return Err(bad("text outside the root element")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_add_comment_call() {
        let xml = method_call(
            "call",
            &[
                Value::str("SESSION"),
                Value::str("sales_order.addComment"),
                Value::Array(vec![
                    Value::str("100000001"),
                    Value::str("processing"),
                    Value::str("Payment captured"),
                    Value::Bool(false),
                ]),
            ],
        );
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodCall><methodName>call</methodName><params>\
             <param><value><string>SESSION</string></value></param>\
             <param><value><string>sales_order.addComment</string></value></param>\
             <param><value><array><data><value><string>100000001</string></value>\
             <value><string>processing</string></value><value><string>Payment captured</string></value>\
             <value><boolean>0</boolean></value></data></array></value></param></params></methodCall>"
        );
    }

    #[test]
    fn escapes_markup_and_control_characters() {
        let xml = method_call("m", &[Value::str("a & b <c> \"d\" 'e'\r\n\u{1}")]);
        assert!(
            xml.contains("<string>a &amp; b &lt;c&gt; &quot;d&quot; 'e'&#13;\n\u{FFFD}</string>"),
            "{xml}"
        );
    }

    #[test]
    fn encodes_other_types() {
        let xml = method_call(
            "m",
            &[
                Value::Int(-3),
                Value::Bool(true),
                Value::Nil,
                Value::Struct(vec![("k&".into(), Value::Double(1.5))]),
            ],
        );
        assert!(xml.contains("<value><int>-3</int></value>"));
        assert!(xml.contains("<value><boolean>1</boolean></value>"));
        assert!(xml.contains("<value><nil/></value>"));
        assert!(xml.contains("<struct><member><name>k&amp;</name><value><double>1.5</double></value></member></struct>"));
    }

    #[test]
    fn encoded_strings_decode_back_unchanged() {
        let original = "Zahlung <ok> & \"fertig\" — 100 %\r\nline 2\t";
        let xml = method_call("m", &[Value::str(original)])
            .replace("methodCall", "methodResponse")
            .replace("<methodName>m</methodName>", "");
        assert_eq!(
            parse_response(&xml),
            Ok(Response::Value(Value::str(original)))
        );
    }

    #[test]
    fn parses_a_string_response() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><string>0123abcdef</string></value></param></params></methodResponse>";
        assert_eq!(
            parse_response(xml),
            Ok(Response::Value(Value::str("0123abcdef")))
        );
    }

    #[test]
    fn parses_boolean_and_integer_responses() {
        let ok = "<methodResponse><params><param><value><boolean>1</boolean></value></param></params></methodResponse>";
        assert_eq!(parse_response(ok), Ok(Response::Value(Value::Bool(true))));
        let int = "<methodResponse><params><param><value><i4> 42 </i4></value></param></params></methodResponse>";
        assert_eq!(parse_response(int), Ok(Response::Value(Value::Int(42))));
    }

    #[test]
    fn an_untyped_value_is_a_string_with_entities_resolved() {
        let xml = "<methodResponse>\n <params>\n  <param>\n   <value> a &amp; b &#233; </value>\n  </param>\n </params>\n</methodResponse>\n";
        assert_eq!(
            parse_response(xml),
            Ok(Response::Value(Value::str(" a & b é ")))
        );
    }

    #[test]
    fn parses_the_documented_fault() {
        let xml = "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>100</int></value></member><member><name>faultString</name><value><string>Requested order not exists.</string></value></member></struct></value></fault></methodResponse>";
        assert_eq!(
            parse_response(xml),
            Ok(Response::Fault {
                code: 100,
                message: "Requested order not exists.".into()
            })
        );
    }

    #[test]
    fn parses_a_fault_with_untyped_string_and_whitespace() {
        let xml = "<methodResponse>\n<fault>\n<value>\n<struct>\n<member><name>faultString</name><value>Session expired. Try to relogin.</value></member>\n<member><name>faultCode</name><value><int>5</int></value></member>\n</struct>\n</value>\n</fault>\n</methodResponse>";
        assert_eq!(
            parse_response(xml),
            Ok(Response::Fault {
                code: 5,
                message: "Session expired. Try to relogin.".into()
            })
        );
    }

    #[test]
    fn parses_nested_arrays_and_structs() {
        let xml = "<methodResponse><params><param><value><struct><member><name>state</name><value><string>holded</string></value></member><member><name>items</name><value><array><data><value><int>1</int></value><value>x</value><value><nil/></value></data></array></value></member></struct></value></param></params></methodResponse>";
        assert_eq!(
            parse_response(xml),
            Ok(Response::Value(Value::Struct(vec![
                ("state".into(), Value::str("holded")),
                (
                    "items".into(),
                    Value::Array(vec![Value::Int(1), Value::str("x"), Value::Nil])
                ),
            ])))
        );
    }

    #[test]
    fn refuses_doctype_unknown_entities_and_garbage() {
        let doctype = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><methodResponse><params><param><value>&a;</value></param></params></methodResponse>";
        assert!(parse_response(doctype).is_err());
        let entity =
            "<methodResponse><params><param><value>&a;</value></param></params></methodResponse>";
        assert!(parse_response(entity).is_err());
        assert!(parse_response("<html><body>Maintenance</body></html>").is_err());
        assert!(parse_response("").is_err());
        assert!(parse_response("<methodResponse><params>").is_err());
        assert!(parse_response("<methodResponse><params><param><value><boolean>yes</boolean></value></param></params></methodResponse>").is_err());
    }
}
