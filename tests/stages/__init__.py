"""Each stage on small run files: what it stores, resumes and reports."""
