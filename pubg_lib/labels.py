"""Token labels shared by the encoder (`models`) and the losses: a position whose label is `IGNORE` is not an answer
token (prompt, image, padding) and no loss sees it. -100 is the Hugging Face convention (`ignore_index`)."""

IGNORE = -100
