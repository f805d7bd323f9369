"""Wire codecs: decode a wire request into the canonical form, encode results, streams and errors back."""
