print("asynccode")
