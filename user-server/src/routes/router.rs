//! Chooses each request's endpoint by its path and method in one lookup;
//! 404 and 405 (with `Allow`) are answered here.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use super::endpoint::{Endpoint, Handler};
use crate::error::error_response;
use crate::http::Arrival;

/// Chooses each request's endpoint by its path and method in one lookup
/// (not a chain of filters tried in turn): 404 for a path no template
/// matches, 405 for a method the path does not answer.
pub(super) struct Router {
    routes: Vec<(&'static Endpoint, Handler)>,
    /// Templates without a parameter, by their path without slashes at the ends.
    literal: HashMap<String, Vec<usize>>,
    /// Templates with a parameter, tried in turn (a handful).
    with_param: Vec<usize>,
}

impl Router {
    pub(super) fn new(routes: Vec<(&'static Endpoint, Handler)>) -> Self {
        let mut literal: HashMap<String, Vec<usize>> = HashMap::new();
        let mut with_param = Vec::new();
        for (i, (endpoint, _)) in routes.iter().enumerate() {
            if endpoint.pattern.has_param() {
                with_param.push(i);
            } else {
                literal.entry(endpoint.path.trim_matches('/').to_owned()).or_default().push(i);
            }
        }
        Self { routes, literal, with_param }
    }

    pub(super) fn route(&self, arrival: Arrival) -> BoxFuture<'static, Response> {
        let path = arrival.path.as_str();
        let key = path.strip_prefix('/').map(|p| p.strip_suffix('/').unwrap_or(p));
        let literal = key.and_then(|k| self.literal.get(k)).into_iter().flatten().map(|&i| (i, None));
        let with_param = self.with_param.iter().filter_map(|&i| Some((i, self.routes[i].0.pattern.matches(path)?)));
        let mut path_known = false;
        for (i, param) in literal.chain(with_param) {
            let (endpoint, handler) = &self.routes[i];
            if endpoint.answers().contains(&arrival.method) {
                return handler(arrival, param);
            }
            path_known = true;
        }
        let error = if path_known {
            let mut response =
                error_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route".into());
            // RFC 9110 §15.5.6: a 405 lists what the resource does support.
            if let Some(allowed) = self.allowed_methods(path).and_then(|a| HeaderValue::from_str(&a).ok()) {
                response.headers_mut().insert(header::ALLOW, allowed);
            }
            response
        } else {
            error_response(StatusCode::NOT_FOUND, "no such route".into())
        };
        Box::pin(std::future::ready(error))
    }

    /// The methods `path` answers, for the `Allow` header of a 405.
    fn allowed_methods(&self, path: &str) -> Option<String> {
        let mut methods: Vec<&Method> = Vec::new();
        for (endpoint, _) in self.routes.iter().filter(|(e, _)| e.pattern.matches(path).is_some()) {
            methods.extend(endpoint.answers());
        }
        if methods.is_empty() {
            return None;
        }
        let order = [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
        methods.sort_by_key(|m| order.iter().position(|o| o == *m));
        methods.dedup();
        Some(methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_405_lists_the_methods_the_path_answers() {
        let routes = super::super::table::endpoints()
            .iter()
            .map(|e| {
                let handler: Handler = Box::new(|_, _| Box::pin(std::future::ready(Response::default())));
                (e, handler)
            })
            .collect();
        let router = Router::new(routes);
        assert_eq!(router.allowed_methods("/user/track/favorite"), Some("GET, HEAD, POST, DELETE".into()));
        assert_eq!(router.allowed_methods("/user/track/favorite/contains"), Some("GET, HEAD".into()));
        assert_eq!(router.allowed_methods("/nope"), None);
    }
}
