//! Go `text/template`, as LogQL's `line_format` and `label_format` use it.
