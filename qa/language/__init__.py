"""Reading text: words, stems, names, and what kind of answer a question asks for."""
