"""Suite loaders: turn a file of triples (with optional reference images and boxes) into SuiteItems."""
