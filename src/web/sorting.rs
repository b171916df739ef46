//! Sortable table headers. The column and direction live in the URL (`sort`, `dir`) beside the
//! page's other parameters, so Back and reload show the same order; each header is a plain link
//! (reachable and operable by keyboard), and the sorted column carries `aria-sort`. Unknown
//! columns or directions fall back to the table's default rather than failing. Rows are sorted
//! with a stable sort, so equal values keep the table's natural order.

use std::cmp::Ordering;

use serde::Deserialize;

/// A column a table can be sorted by: its code in the URL, and whether a first click sorts it
/// newest or largest first (dates and counts) rather than A to Z.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub code: &'static str,
    pub descending_first: bool,
}

pub const fn column(code: &'static str) -> Column {
    Column {
        code,
        descending_first: false,
    }
}

pub const fn column_desc(code: &'static str) -> Column {
    Column {
        code,
        descending_first: true,
    }
}

/// The sort a table is shown in, and the links of its headers.
#[derive(Debug, Clone)]
pub struct TableSort {
    path: String,
    /// The page's other parameters (search, filters) that header links keep; the page number
    /// is dropped, since a new order starts at the first page.
    keep: Vec<(&'static str, String)>,
    columns: &'static [Column],
    pub column: &'static str,
    pub descending: bool,
}

impl TableSort {
    /// The sort asked for by `sort` and `dir` (`asc` or `desc`); the first of `columns` is the
    /// default, and a column without `dir` sorts in its natural direction.
    pub fn new(path: impl Into<String>, columns: &'static [Column], sort: &str, dir: &str) -> Self {
        let chosen = columns
            .iter()
            .find(|c| c.code == sort)
            .unwrap_or(&columns[0]);
        let descending = match dir {
            "desc" => true,
            "asc" => false,
            _ => chosen.descending_first,
        };
        Self {
            path: path.into(),
            keep: Vec::new(),
            columns,
            column: chosen.code,
            descending,
        }
    }

    /// The sort asked for by a page's query string (its `sort` and `dir`); a query that does
    /// not parse sorts by the default.
    pub fn from_query(path: impl Into<String>, columns: &'static [Column], query: &str) -> Self {
        let asked = actix_web::web::Query::<TableQuery>::from_query(query)
            .map(actix_web::web::Query::into_inner)
            .unwrap_or_default();
        Self::new(path, columns, &asked.sort, &asked.dir)
    }

    /// Keeps a parameter (when not empty) in the header links.
    pub fn keep(mut self, name: &'static str, value: &str) -> Self {
        if !value.is_empty() {
            self.keep.push((name, value.to_owned()));
        }
        self
    }

    fn natural(&self, code: &str) -> bool {
        self.columns
            .iter()
            .find(|c| c.code == code)
            .is_some_and(|c| c.descending_first)
    }

    /// `sort` and `dir` as the URL carries them; none for the default order.
    pub fn params(&self) -> Vec<(&'static str, &'static str)> {
        let mut params = Vec::new();
        if self.column != self.columns[0].code {
            params.push(("sort", self.column));
        }
        if self.descending != self.natural(self.column) {
            params.push(("dir", if self.descending { "desc" } else { "asc" }));
        }
        params
    }

    /// The address of this table sorted this way, at `page` (0 for the first), with the kept
    /// parameters.
    pub fn page_href(&self, page: u64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &self.keep {
            query.append_pair(name, value);
        }
        for (name, value) in self.params() {
            query.append_pair(name, value);
        }
        if page > 0 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{query}", self.path)
        }
    }

    /// This table in this order at its first page, with the kept parameter `name` set to
    /// `value` (left out when empty): a filter link that keeps the search and the sort.
    pub fn href_keeping(&self, name: &'static str, value: &str) -> String {
        let mut other = self.clone();
        other.keep.retain(|(kept, _)| *kept != name);
        other.keep(name, value).page_href(0)
    }

    /// The link of a header: its column in its natural direction, or the other way round when
    /// it is the column sorted already.
    pub fn href(&self, code: &str) -> String {
        let Some(target) = self.columns.iter().find(|c| c.code == code) else {
            return self.page_href(0);
        };
        let descending = if self.is(code) {
            !self.descending
        } else {
            target.descending_first
        };
        Self {
            column: target.code,
            descending,
            ..self.clone()
        }
        .page_href(0)
    }

    pub fn is(&self, code: &str) -> bool {
        self.column == code
    }

    /// The value of `aria-sort` for the sorted column.
    pub fn aria(&self) -> &'static str {
        if self.descending {
            "descending"
        } else {
            "ascending"
        }
    }

    /// A visual arrow beside the sorted column's label (hidden from screen readers, which read
    /// `aria-sort`).
    pub fn mark(&self, code: &str) -> &'static str {
        match (self.is(code), self.descending) {
            (false, _) => "",
            (true, false) => "▲",
            (true, true) => "▼",
        }
    }

    /// Sorts `rows` in place by the chosen column, with `compare(column, a, b)` giving the
    /// ascending order of one column. Stable: equal rows keep their order.
    pub fn apply<T>(&self, rows: &mut [T], compare: impl Fn(&str, &T, &T) -> Ordering) {
        rows.sort_by(|a, b| {
            let order = compare(self.column, a, b);
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
    }
}

/// Case-insensitive text order, for names and addresses.
pub fn text(a: &str, b: &str) -> Ordering {
    a.to_lowercase().cmp(&b.to_lowercase())
}

/// A table's sort as a page's URL carries it.
#[derive(Deserialize, Default)]
struct TableQuery {
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[Column] = &[column("name"), column_desc("created")];

    #[test]
    fn links_keep_filters_flip_the_sorted_column_and_drop_the_page() {
        let sort = TableSort::new("/customers", COLUMNS, "created", "").keep("q", "a b");
        assert!(sort.descending, "dates sort newest first");
        assert_eq!(
            sort.href("created"),
            "/customers?q=a+b&sort=created&dir=asc"
        );
        assert_eq!(sort.href("name"), "/customers?q=a+b");
        assert_eq!(sort.page_href(2), "/customers?q=a+b&sort=created&page=2");
        assert_eq!(sort.mark("created"), "▼");
        assert_eq!(sort.aria(), "descending");
    }

    #[test]
    fn unknown_values_fall_back_to_the_default_and_sorting_is_stable() {
        let sort = TableSort::new("/t", COLUMNS, "<script>", "sideways");
        assert!(sort.is("name") && !sort.descending);
        let mut rows = vec![("b", 1), ("a", 2), ("B", 3)];
        sort.apply(&mut rows, |_, x, y| text(x.0, y.0));
        assert_eq!(rows, vec![("a", 2), ("b", 1), ("B", 3)]);
        let desc = TableSort::new("/t", COLUMNS, "name", "desc");
        desc.apply(&mut rows, |_, x, y| text(x.0, y.0));
        assert_eq!(rows, vec![("b", 1), ("B", 3), ("a", 2)]);
    }
}
