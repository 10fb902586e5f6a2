from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=500)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self):
        return self.text


class Upload(models.Model):
    file = models.FileField(upload_to="uploads/")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created", "-id")

    def __str__(self):
        return self.file.name
