"""Runs of many train runs: the ablation grid (`ablation`), the pre-registered experiment (`config`, `arms`,
`analysis`) and its paired statistics (`stats`)."""
