// Writes a file at an absolute path outside the sample dir.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  integer f;
  initial begin
    f = $fopen("@CANARY_DIR@/pwned_absolute.txt", "w");
    $fwrite(f, "pwned\n");
    $fclose(f);
  end
  assign y = a ^ b;
endmodule
