//! Aligned plain-text columns: each column as wide as its widest cell, two
//! spaces between columns, and no trailing spaces (so the output diffs and
//! greps cleanly, and `awk '{print $1}'` works).

/// Rows of cells (the first row is usually the header) as lines, each
/// ending with a newline. Widths count characters, not bytes, so a non-ASCII
/// id does not skew its column. Rows may have fewer cells than others.
pub fn align<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.as_ref().iter().zip(&widths) {
            line.push_str(cell);
            let pad = width - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', pad + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(cells: &[&[&str]]) -> Vec<Vec<String>> {
        cells
            .iter()
            .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
            .collect()
    }

    #[test]
    fn widths_come_from_the_content() {
        let t = align(&rows(&[&["A", "BB", "C"], &["long-cell", "x", "y"]]));
        assert_eq!(t, "A          BB  C\nlong-cell  x   y\n");
    }

    #[test]
    fn no_trailing_spaces_even_for_empty_last_cells() {
        let t = align(&rows(&[&["KEY", "VALUE"], &["k", ""], &["é", "v"]]));
        assert_eq!(t, "KEY  VALUE\nk\né    v\n");
        assert!(t.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert_eq!(align::<Vec<String>>(&[]), "");
    }
}
