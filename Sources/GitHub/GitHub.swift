// GitHub
