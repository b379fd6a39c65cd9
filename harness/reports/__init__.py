"""report.md, plots and comparisons, computed from a run folder's files (`data`): per run (`report`,
`plots`), across runs (`compare`); `mdtable` formats every table."""
