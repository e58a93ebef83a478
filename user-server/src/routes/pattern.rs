//! Path templates (`/user/track/favorite/{track_id}`) and how a path matches one.

/// A path template split into segments, `{name}` matching any one
/// non-empty segment except the literals sibling templates put there.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param { reserved: Vec<String> },
}

impl Pattern {
    pub(super) fn has_param(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Param { .. }))
    }

    pub(super) fn parse(template: &str) -> Self {
        let segments = template
            .trim_start_matches('/')
            .split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param { reserved: Vec::new() }
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        Self { segments }
    }

    /// A literal in another template, at a parameter's place after the same
    /// prefix, names that route: `/user/track/favorite/contains` is never
    /// the track `contains`.
    pub(super) fn reserve_literals_of(&mut self, all: &[Pattern]) {
        for i in 0..self.segments.len() {
            if !matches!(self.segments[i], Segment::Param { .. }) {
                continue;
            }
            let words: Vec<String> = all
                .iter()
                .filter(|other| other.segments.len() == self.segments.len())
                .filter(|other| other.segments[..i].iter().zip(&self.segments[..i]).all(|(a, b)| a.same_as(b)))
                .filter_map(|other| match &other.segments[i] {
                    Segment::Literal(word) => Some(word.clone()),
                    Segment::Param { .. } => None,
                })
                .collect();
            if let Segment::Param { reserved } = &mut self.segments[i] {
                *reserved = words;
            }
        }
    }

    /// Whether `path` (as sent, one trailing slash allowed) is this
    /// template; `Some(param)` with the parameter's segment, if any.
    pub(super) fn matches(&self, path: &str) -> Option<Option<String>> {
        let path = path.strip_prefix('/')?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut param = None;
        let mut given = path.split('/');
        for segment in &self.segments {
            let part = given.next()?;
            match segment {
                Segment::Literal(word) if word == part => {}
                Segment::Param { reserved } if !part.is_empty() && !reserved.iter().any(|r| r == part) => {
                    param = Some(part.to_owned());
                }
                _ => return None,
            }
        }
        given.next().is_none().then_some(param)
    }
}

impl Segment {
    fn same_as(&self, other: &Segment) -> bool {
        match (self, other) {
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            (Segment::Param { .. }, Segment::Param { .. }) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segment_by_segment() {
        let mut by_path = Pattern::parse("/user/track/favorite/{track_id}");
        by_path.reserve_literals_of(&[by_path.clone(), Pattern::parse("/user/track/favorite/contains")]);
        assert_eq!(by_path.matches("/user/track/favorite/42"), Some(Some("42".into())));
        assert_eq!(by_path.matches("/user/track/favorite/42/"), Some(Some("42".into())));
        assert_eq!(by_path.matches("/user/track/favorite/contains"), None);
        assert_eq!(by_path.matches("/user/track/favorite/"), None);
        assert_eq!(by_path.matches("/user/track/favorite/a/b"), None);
        assert!(by_path.has_param() && !Pattern::parse("/user/get").has_param());
    }
}
