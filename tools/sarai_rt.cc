int main() { return 1; }  // placeholder; replaced in the next commit
