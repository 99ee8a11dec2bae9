// placeholder while the session is written; replaced in the next commit
