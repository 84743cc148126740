//! The request's body framing as it goes upstream.
//!
//! RFC 9110 §8.6: a recipient may accept a `Content-Length` that is a list of
//! identical values (`5, 5`, or the same header line twice), but must then
//! forward one valid value. pingora reconciles such a list for its own framing
//! (and refuses lists that disagree), yet forwards the header lines as they
//! came; a backend that reads the list differently would frame the body
//! differently from us (request smuggling). So exactly one value goes on.

use http::header::CONTENT_LENGTH;
use pingora::http::RequestHeader;

/// Replace a `Content-Length` list with its one value. Untouched when there is
/// a single plain value (the common case: nothing is allocated).
///
/// # Errors
/// When the values disagree or one is not a number; the caller answers 400
/// (pingora should already have refused such a request).
pub fn single_content_length(req: &mut RequestHeader) -> Result<(), ()> {
    let mut values = req.headers.get_all(CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (None, _) => return Ok(()),
        (Some(v), None) if !v.as_bytes().contains(&b',') => return Ok(()),
        _ => {}
    }
    let mut length: Option<u64> = None;
    for value in req.headers.get_all(CONTENT_LENGTH) {
        for token in value.to_str().map_err(|_| ())?.split(',') {
            let token = token.trim();
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            let n: u64 = token.parse().map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
    }
    let n = length.ok_or(())?;
    req.insert_header(CONTENT_LENGTH, n).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(values: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/", None).unwrap();
        for v in values {
            r.append_header("Content-Length", v.to_string()).unwrap();
        }
        r
    }

    fn lengths(r: &RequestHeader) -> Vec<&str> {
        r.headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn a_list_of_identical_values_goes_on_as_one() {
        for values in [&["5, 5"][..], &["5", "5"], &["5,5", " 5 "]] {
            let mut r = req(values);
            assert_eq!(single_content_length(&mut r), Ok(()), "{values:?}");
            assert_eq!(lengths(&r), ["5"], "{values:?}");
        }
        let mut plain = req(&["12"]);
        assert_eq!(single_content_length(&mut plain), Ok(()));
        assert_eq!(lengths(&plain), ["12"]);
        let mut none = req(&[]);
        assert_eq!(single_content_length(&mut none), Ok(()));
        assert!(lengths(&none).is_empty());
    }

    #[test]
    fn disagreeing_or_malformed_lists_are_refused() {
        for values in [
            &["5, 6"][..],
            &["5", "6"],
            &["5, x"],
            &["5, "],
            &["+5", "5"],
        ] {
            let mut r = req(values);
            assert_eq!(single_content_length(&mut r), Err(()), "{values:?}");
        }
    }
}
