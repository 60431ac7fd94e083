"""The typed models of the files of config/ (one module per file or pair of files; `base`: what
they share and how a refusal becomes one message; `project`: every file at once, the checks
between files and the JSON Schemas)."""
